//! Core (`v1`) kinds other than pods, plus the small groups (coordination, RBAC, policy,
//! autoscaling), as upstream's validation functions for them.

use base64::Engine;
use serde_json::{Map, Value};

use super::field::{
    self, arr, boolean, duplicate, forbidden, go_quote, int, invalid, not_supported, obj, required,
    s, set, Path, V,
};
use super::meta;
use super::names::{self, NameRule};
use super::pod;
use super::quantity::Quantity;
use crate::status::Cause;

/// `core.MaxSecretSize`: the cap on ConfigMap and Secret data.
const MAX_DATA_SIZE: usize = 1024 * 1024;

fn meta_path() -> Path {
    Path::new("metadata")
}

// Services.

fn is_headless(spec: &Value) -> bool {
    let ips = cluster_ips(spec);
    ips.len() == 1 && ips[0] == "None"
}

/// `clusterIPs`, as the service strategy normalizes it from `clusterIP` before validating.
fn cluster_ips(spec: &Value) -> Vec<String> {
    let ips: Vec<String> = arr(spec, "clusterIPs")
        .iter()
        .map(|v| v.as_str().unwrap_or("").to_owned())
        .collect();
    let single = s(spec, "clusterIP");
    if ips.is_empty() && !single.is_empty() {
        vec![single.to_owned()]
    } else {
        ips
    }
}

fn go_ips(ips: &[String]) -> V {
    V::Raw(format!(
        "[]string{{{}}}",
        ips.iter()
            .map(|s| go_quote(s))
            .collect::<Vec<_>>()
            .join(", ")
    ))
}

fn externally_accessible(spec: &Value) -> bool {
    let ty = s(spec, "type");
    ty == "LoadBalancer"
        || ty == "NodePort"
        || (ty == "ClusterIP" && !arr(spec, "externalIPs").is_empty())
}

/// `ValidateService`.
pub(crate) fn service(svc: &Value) -> Vec<Cause> {
    let mp = meta_path();
    let mut errs = meta::object_meta(svc, true, NameRule::Dns1035, &mp);
    let ann = obj(field::field(svc, "metadata"), "annotations");
    let get_ann = |k: &str| ann.and_then(|a| a.get(k)).and_then(Value::as_str);
    if let (Some(mode), Some(hints)) = (
        get_ann("service.kubernetes.io/topology-mode"),
        get_ann("service.kubernetes.io/topology-aware-hints"),
    ) {
        if mode != hints {
            errs.push(invalid(
                &mp.child("annotations").key("service.kubernetes.io/topology-mode"),
                V::s(mode),
                "must match annotations[service.kubernetes.io/topology-aware-hints] when both are specified",
            ));
        }
    }
    let spec = field::field(svc, "spec");
    let sp = Path::new("spec");
    let ty = s(spec, "type");
    let ports = arr(spec, "ports");
    let headless = is_headless(spec);
    let ips = cluster_ips(spec);
    if ports.is_empty() && !headless && ty != "ExternalName" {
        errs.push(required(&sp.child("ports"), ""));
    }
    match ty {
        "LoadBalancer" | "NodePort" if headless => errs.push(invalid(
            &sp.child("clusterIPs").index(0),
            V::s("None"),
            &format!("may not be set to 'None' for {ty} services"),
        )),
        "ExternalName" => {
            if !ips.is_empty() {
                errs.push(forbidden(
                    &sp.child("clusterIPs"),
                    "may not be set for ExternalName services",
                ));
            }
            if !arr(spec, "ipFamilies").is_empty() {
                errs.push(forbidden(
                    &sp.child("ipFamilies"),
                    "may not be set for ExternalName services",
                ));
            }
            if set(spec, "ipFamilyPolicy").is_some() {
                errs.push(forbidden(
                    &sp.child("ipFamilyPolicy"),
                    "may not be set for ExternalName services",
                ));
            }
            let en = s(spec, "externalName");
            let cname = en.strip_suffix('.').unwrap_or(en);
            if cname.is_empty() {
                errs.push(required(&sp.child("externalName"), ""));
            } else {
                for m in names::dns1123_subdomain(cname) {
                    errs.push(invalid(&sp.child("externalName"), V::s(cname), &m));
                }
            }
        }
        _ => {}
    }
    let mut port_names = std::collections::HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let pp = sp.child("ports").index(i);
        let name = s(port, "name");
        if ports.len() > 1 && name.is_empty() {
            errs.push(required(&pp.child("name"), ""));
        } else if !name.is_empty() {
            for m in names::dns1123_label(name) {
                errs.push(invalid(&pp.child("name"), V::s(name), &m));
            }
            if !port_names.insert(name) {
                errs.push(duplicate(&pp.child("name"), V::s(name)));
            }
        }
        let num = int(port, "port").unwrap_or(0);
        for m in names::port_num(num) {
            errs.push(invalid(&pp.child("port"), V::I(num), &m));
        }
        errs.extend(pod::protocol(s(port, "protocol"), &pp.child("protocol")));
        errs.extend(pod::port_num_or_name(
            field::field(port, "targetPort"),
            &pp.child("targetPort"),
        ));
        if let Some(ap) = port.get("appProtocol").and_then(Value::as_str) {
            errs.extend(meta::qualified_name(ap, &pp.child("appProtocol")));
        }
    }
    if let Some(sel) = obj(spec, "selector") {
        errs.extend(meta::labels(Some(sel), &sp.child("selector")));
    }
    let affinity = s(spec, "sessionAffinity");
    match affinity {
        "" => errs.push(required(&sp.child("sessionAffinity"), "")),
        "ClientIP" | "None" => {}
        other => errs.push(not_supported(
            &sp.child("sessionAffinity"),
            V::s(other),
            &["ClientIP", "None"],
        )),
    }
    let cfg_path = sp.child("sessionAffinityConfig");
    if affinity == "ClientIP" {
        let when = "when session affinity type is ClientIP";
        match set(spec, "sessionAffinityConfig") {
            None => errs.push(required(&cfg_path, when)),
            Some(cfg) => match set(cfg, "clientIP") {
                None => errs.push(required(&cfg_path.child("clientIP"), when)),
                Some(cip) => match int(cip, "timeoutSeconds") {
                    None => errs.push(required(
                        &cfg_path.child("clientIP").child("timeoutSeconds"),
                        when,
                    )),
                    Some(t) if t <= 0 || t > 86400 => errs.push(invalid(
                        &cfg_path.child("clientIP").child("timeoutSeconds"),
                        V::I(t),
                        "must be greater than 0 and less than 86400",
                    )),
                    Some(_) => {}
                },
            },
        }
    } else if affinity == "None" && set(spec, "sessionAffinityConfig").is_some() {
        errs.push(forbidden(
            &cfg_path,
            "must not be set when session affinity is None",
        ));
    }
    errs.extend(cluster_ips_related(spec, &ips));
    for (i, ip) in arr(spec, "externalIPs").iter().enumerate() {
        let ip = ip.as_str().unwrap_or("");
        let p = sp.child("externalIPs").index(i);
        match names::parse_ip(ip) {
            None => errs.push(invalid(
                &p,
                V::s(ip),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            )),
            Some(addr) => errs.extend(non_special_ip(ip, addr, &p)),
        }
    }
    match ty {
        "" => errs.push(required(&sp.child("type"), "")),
        "ClusterIP" | "ExternalName" | "LoadBalancer" | "NodePort" => {}
        other => errs.push(not_supported(
            &sp.child("type"),
            V::s(other),
            &["ClusterIP", "ExternalName", "LoadBalancer", "NodePort"],
        )),
    }
    if ty == "ClusterIP" {
        for (i, port) in ports.iter().enumerate() {
            if int(port, "nodePort").unwrap_or(0) != 0 {
                errs.push(forbidden(
                    &sp.child("ports").index(i).child("nodePort"),
                    "may not be used when `type` is 'ClusterIP'",
                ));
            }
        }
    }
    let mut node_ports = std::collections::HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let np = int(port, "nodePort").unwrap_or(0);
        if np != 0 && !node_ports.insert((s(port, "protocol"), np)) {
            errs.push(duplicate(
                &sp.child("ports").index(i).child("nodePort"),
                V::I(np),
            ));
        }
    }
    let mut seen_ports = std::collections::HashSet::new();
    for (i, port) in ports.iter().enumerate() {
        let proto = s(port, "protocol");
        let num = int(port, "port").unwrap_or(0);
        if !seen_ports.insert((proto, num)) {
            errs.push(duplicate(
                &sp.child("ports").index(i),
                V::Raw(format!(
                    "core.ServicePort{{Name:\"\", Protocol:{}, AppProtocol:(*string)(nil), Port:{num}, TargetPort:intstr.IntOrString{{Type:0, IntVal:0, StrVal:\"\"}}, NodePort:0}}",
                    go_quote(proto)
                )),
            ));
        }
    }
    let ranges = arr(spec, "loadBalancerSourceRanges");
    if !ranges.is_empty() {
        let p = sp.child("LoadBalancerSourceRanges");
        if ty != "LoadBalancer" {
            errs.push(forbidden(
                &p,
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
        for (i, r) in ranges.iter().enumerate() {
            let r = r.as_str().unwrap_or("").trim();
            if !valid_cidr(r) {
                errs.push(invalid(
                    &p.index(i),
                    V::s(r),
                    "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
                ));
            }
        }
    }
    if set(spec, "allocateLoadBalancerNodePorts").is_some() && ty != "LoadBalancer" {
        errs.push(forbidden(
            &sp.child("allocateLoadBalancerNodePorts"),
            "may only be used when `type` is 'LoadBalancer'",
        ));
    }
    if ty == "LoadBalancer" && set(spec, "allocateLoadBalancerNodePorts").is_none() {
        errs.push(required(&Path::new("allocateLoadBalancerNodePorts"), ""));
    }
    if let Some(class) = spec.get("loadBalancerClass").and_then(Value::as_str) {
        if ty == "LoadBalancer" {
            errs.extend(meta::qualified_name(class, &sp.child("loadBalancerClass")));
        } else {
            errs.push(forbidden(
                &sp.child("loadBalancerClass"),
                "may only be used when `type` is 'LoadBalancer'",
            ));
        }
    }
    let etp = s(spec, "externalTrafficPolicy");
    if !externally_accessible(spec) {
        if !etp.is_empty() {
            errs.push(invalid(
                &sp.child("externalTrafficPolicy"),
                V::s(etp),
                "may only be set for externally-accessible services",
            ));
        }
    } else if etp.is_empty() {
        errs.push(required(&sp.child("externalTrafficPolicy"), ""));
    } else if etp != "Cluster" && etp != "Local" {
        errs.push(not_supported(
            &sp.child("externalTrafficPolicy"),
            V::s(etp),
            &["Cluster", "Local"],
        ));
    }
    let needs_health_check = ty == "LoadBalancer" && etp == "Local";
    let hcnp = int(spec, "healthCheckNodePort").unwrap_or(0);
    if !needs_health_check && hcnp != 0 {
        errs.push(invalid(
            &sp.child("healthCheckNodePort"),
            V::I(hcnp),
            "may only be set when `type` is 'LoadBalancer' and `externalTrafficPolicy` is 'Local'",
        ));
    } else if needs_health_check && hcnp != 0 {
        for m in names::port_num(hcnp) {
            errs.push(invalid(&sp.child("healthCheckNodePort"), V::I(hcnp), &m));
        }
    }
    match spec.get("internalTrafficPolicy").and_then(Value::as_str) {
        None => {
            if ["NodePort", "LoadBalancer", "ClusterIP"].contains(&ty) {
                errs.push(required(&sp.child("internalTrafficPolicy"), ""));
            }
        }
        Some("Cluster" | "Local") => {}
        Some(other) => errs.push(not_supported(
            &sp.child("internalTrafficPolicy"),
            V::s(other),
            &["Cluster", "Local"],
        )),
    }
    if let Some(td) = spec.get("trafficDistribution").and_then(Value::as_str) {
        if td != "PreferClose" {
            errs.push(not_supported(
                &sp.child("trafficDistribution"),
                V::s(td),
                &["PreferClose"],
            ));
        }
    }
    errs
}

fn non_special_ip(raw: &str, addr: std::net::IpAddr, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    if addr.is_unspecified() {
        errs.push(invalid(
            path,
            V::s(raw),
            &format!("may not be unspecified ({raw})"),
        ));
    }
    if addr.is_loopback() {
        errs.push(invalid(
            path,
            V::s(raw),
            "may not be in the loopback range (127.0.0.0/8, ::1/128)",
        ));
    }
    let link_local = match addr {
        std::net::IpAddr::V4(a) => a.is_link_local(),
        std::net::IpAddr::V6(a) => (a.segments()[0] & 0xffc0) == 0xfe80,
    };
    if link_local {
        errs.push(invalid(
            path,
            V::s(raw),
            "may not be in the link-local range (169.254.0.0/16, fe80::/10)",
        ));
    }
    let ll_multicast = match addr {
        std::net::IpAddr::V4(a) => a.octets()[..3] == [224, 0, 0],
        std::net::IpAddr::V6(a) => (a.segments()[0] & 0xff0f) == 0xff02,
    };
    if ll_multicast {
        errs.push(invalid(
            path,
            V::s(raw),
            "may not be in the link-local multicast range (224.0.0.0/24, ff02::/10)",
        ));
    }
    errs
}

fn valid_cidr(s: &str) -> bool {
    let Some((ip, bits)) = s.split_once('/') else {
        return false;
    };
    let Some(addr) = names::parse_ip(ip) else {
        return false;
    };
    let max = if addr.is_ipv4() { 32 } else { 128 };
    bits.parse::<u32>().is_ok_and(|b| b <= max) && !bits.starts_with('+')
}

/// `ValidateServiceClusterIPsRelatedFields`.
fn cluster_ips_related(spec: &Value, ips: &[String]) -> Vec<Cause> {
    if s(spec, "type") == "ExternalName" {
        return Vec::new();
    }
    let mut errs = Vec::new();
    let sp = Path::new("spec");
    let ips_path = sp.child("clusterIPs");
    let single = s(spec, "clusterIP");
    if !single.is_empty() {
        if ips.is_empty() {
            errs.push(required(&ips_path, ""));
        } else if ips[0] != single {
            errs.push(invalid(
                &ips_path,
                go_ips(ips),
                "first value must match `clusterIP`",
            ));
        }
    } else if !ips.is_empty() {
        errs.push(invalid(
            &ips_path,
            go_ips(ips),
            "must be empty when `clusterIP` is not specified",
        ));
    }
    let mut seen = std::collections::HashSet::new();
    for (i, fam) in arr(spec, "ipFamilies").iter().enumerate() {
        let fam = fam.as_str().unwrap_or("");
        let p = sp.child("ipFamilies").index(i);
        if fam != "IPv4" && fam != "IPv6" {
            errs.push(not_supported(&p, V::s(fam), &["IPv4", "IPv6"]));
        }
        if !seen.insert(fam) {
            errs.push(duplicate(&p, V::s(fam)));
        }
    }
    if let Some(policy) = spec.get("ipFamilyPolicy").and_then(Value::as_str) {
        if !["PreferDualStack", "RequireDualStack", "SingleStack"].contains(&policy) {
            errs.push(not_supported(
                &sp.child("ipFamilyPolicy"),
                V::s(policy),
                &["PreferDualStack", "RequireDualStack", "SingleStack"],
            ));
        }
    }
    let mut bad_ips = false;
    for (i, ip) in ips.iter().enumerate() {
        if i == 0 && ip == "None" {
            if ips.len() > 1 {
                bad_ips = true;
                errs.push(invalid(
                    &ips_path,
                    go_ips(ips),
                    "'None' must be the first and only value",
                ));
            }
            continue;
        }
        if names::parse_ip(ip).is_none() {
            bad_ips = true;
            errs.push(invalid(
                &ips_path.index(i),
                V::s(ip),
                "must be a valid IP address, (e.g. 10.9.8.7 or 2001:db8::ffff)",
            ));
        }
    }
    if ips.len() > 2 {
        errs.push(invalid(
            &ips_path,
            go_ips(ips),
            "may only hold up to 2 values",
        ));
    }
    if bad_ips {
        return errs;
    }
    if ips.len() > 1 {
        let v4 = ips
            .iter()
            .filter(|ip| names::parse_ip(ip).is_some_and(|a| a.is_ipv4()))
            .count();
        if v4 != 1 || ips.len() != 2 {
            errs.push(invalid(
                &ips_path,
                go_ips(ips),
                "may specify no more than one IP for each IP family",
            ));
        }
    }
    if !is_headless(spec) {
        let fams = arr(spec, "ipFamilies");
        for (i, ip) in ips.iter().enumerate() {
            let Some(fam) = fams.get(i).and_then(Value::as_str) else {
                break;
            };
            let v6 = names::parse_ip(ip).is_some_and(|a| a.is_ipv6());
            if fam == "IPv4" && v6 {
                errs.push(invalid(
                    &ips_path.index(i),
                    V::s(ip),
                    &format!("expected an IPv4 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
            if fam == "IPv6" && !v6 {
                errs.push(invalid(
                    &ips_path.index(i),
                    V::s(ip),
                    &format!("expected an IPv6 value as indicated by `ipFamilies[{i}]`"),
                ));
            }
        }
    }
    errs
}

/// `ValidateServiceUpdate`.
pub(crate) fn service_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    let ns = field::field(new, "spec");
    let os = field::field(old, "spec");
    let (nt, ot) = (s(ns, "type"), s(os, "type"));
    let sp = Path::new("spec");
    if nt != "ExternalName" && ot != "ExternalName" && !(is_headless(ns) && is_headless(os)) {
        let (nips, oips) = (cluster_ips(ns), cluster_ips(os));
        let p = sp.child("clusterIPs");
        if nips.len() == oips.len() {
            for (i, ip) in oips.iter().enumerate() {
                if *ip != nips[i] {
                    errs.push(invalid(
                        &p.index(i),
                        go_ips(&nips),
                        "may not change once set",
                    ));
                }
            }
        } else if oips.len() > nips.len() {
            if nips.is_empty() {
                errs.push(invalid(
                    &p.index(0),
                    go_ips(&nips),
                    "primary clusterIP can not be unset",
                ));
            }
            if !oips.is_empty() && !nips.is_empty() && nips[0] != oips[0] {
                errs.push(invalid(
                    &p.index(0),
                    go_ips(&nips),
                    "may not change once set",
                ));
            }
            if nips.len() == 1 && s(ns, "ipFamilyPolicy") != "SingleStack" {
                let v = ns
                    .get("ipFamilyPolicy")
                    .and_then(Value::as_str)
                    .map_or(V::Raw("null".into()), V::s);
                errs.push(invalid(
                    &sp.child("ipFamilyPolicy"),
                    v,
                    "must be set to 'SingleStack' when releasing the secondary clusterIP",
                ));
            }
        } else if !oips.is_empty() && nips[0] != oips[0] {
            errs.push(invalid(
                &p.index(0),
                go_ips(&nips),
                "may not change once set",
            ));
        }
    }
    if nt != "ExternalName"
        && ot != "ExternalName"
        && is_headless(ns) == is_headless(os)
        && !is_headless(ns)
    {
        let nf: Vec<String> = arr(ns, "ipFamilies")
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .collect();
        let of: Vec<String> = arr(os, "ipFamilies")
            .iter()
            .map(|v| v.as_str().unwrap_or("").to_owned())
            .collect();
        let p = sp.child("ipFamilies").index(0);
        if nf.len() == of.len() {
            for (i, f) in of.iter().enumerate() {
                if *f != nf[i] {
                    errs.push(invalid(&p, go_ips(&nf), "may not change once set"));
                }
            }
        } else if !of.is_empty() && !nf.is_empty() && nf[0] != of[0] {
            errs.push(invalid(
                &p,
                go_ips(&cluster_ips(ns)),
                "may not change once set",
            ));
        }
    }
    if nt == "LoadBalancer"
        && ot == "LoadBalancer"
        && ns.get("loadBalancerClass") != os.get("loadBalancerClass")
    {
        let v = ns
            .get("loadBalancerClass")
            .and_then(Value::as_str)
            .map_or(V::Raw("null".into()), V::s);
        errs.push(invalid(
            &sp.child("loadBalancerClass"),
            v,
            "may not change once set",
        ));
    }
    let needs = |sp_: &Value| {
        s(sp_, "type") == "LoadBalancer" && s(sp_, "externalTrafficPolicy") == "Local"
    };
    if needs(ns) && needs(os) && int(ns, "healthCheckNodePort") != int(os, "healthCheckNodePort") {
        errs.push(forbidden(
            &sp.child("healthCheckNodePort"),
            "field is immutable",
        ));
    }
    errs.extend(service(new));
    errs
}

// ConfigMaps and Secrets.

fn data_len(v: &Value, base64_encoded: bool) -> usize {
    let text = v.as_str().unwrap_or("");
    if base64_encoded {
        let trimmed = text.trim_end_matches('=');
        trimmed.len() * 3 / 4
    } else {
        text.len()
    }
}

/// `ValidateConfigMap`.
pub(crate) fn config_map(cm: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(cm, true, NameRule::Subdomain, &meta_path());
    let data = obj(cm, "data");
    let binary = obj(cm, "binaryData");
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        let p = Path::new("data").key(k);
        for m in names::config_map_key(k) {
            errs.push(invalid(&p, V::s(k), &m));
        }
        if binary.is_some_and(|b| b.contains_key(k)) {
            errs.push(invalid(
                &p,
                V::s(k),
                "duplicate of key present in binaryData",
            ));
        }
        total += data_len(v, false);
    }
    for (k, v) in binary.into_iter().flatten() {
        for m in names::config_map_key(k) {
            errs.push(invalid(&Path::new("binaryData").key(k), V::s(k), &m));
        }
        total += data_len(v, true);
    }
    if total > MAX_DATA_SIZE {
        errs.push(field::too_long(&Path::new(""), MAX_DATA_SIZE));
    }
    errs
}

/// `ValidateConfigMapUpdate`.
pub(crate) fn config_map_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    if boolean(old, "immutable") == Some(true) {
        let msg = "field is immutable when `immutable` is set";
        if boolean(new, "immutable") != Some(true) {
            errs.push(forbidden(&Path::new("immutable"), msg));
        }
        for key in ["data", "binaryData"] {
            if !field::sem_eq(new.get(key), old.get(key)) {
                errs.push(forbidden(&Path::new(key), msg));
            }
        }
    }
    errs.extend(config_map(new));
    errs
}

fn decoded(v: &Value) -> Vec<u8> {
    base64::engine::general_purpose::STANDARD
        .decode(v.as_str().unwrap_or(""))
        .unwrap_or_default()
}

/// The error Go's `json.Unmarshal` into a map gives for malformed docker config contents.
fn go_json_map_error(bytes: &[u8]) -> Option<String> {
    match serde_json::from_slice::<Value>(bytes) {
        Ok(Value::Object(_)) => None,
        Ok(Value::Null) => None,
        Ok(other) => {
            let kind = match other {
                Value::Array(_) => "array",
                Value::String(_) => "string",
                Value::Number(_) => "number",
                _ => "bool",
            };
            Some(format!(
                "json: cannot unmarshal {kind} into Go value of type map[string]interface {{}}"
            ))
        }
        Err(e) => {
            let first = bytes.iter().find(|b| !b.is_ascii_whitespace());
            Some(match first {
                None => "unexpected end of JSON input".into(),
                Some(c) if !b"{[\"-0123456789tfn".contains(c) => {
                    format!(
                        "invalid character '{}' looking for beginning of value",
                        *c as char
                    )
                }
                Some(_) if e.is_eof() => "unexpected end of JSON input".into(),
                Some(_) => e.to_string(),
            })
        }
    }
}

/// `ValidateSecret`.
pub(crate) fn secret(sec: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(sec, true, NameRule::Subdomain, &meta_path());
    let data_path = Path::new("data");
    let data = obj(sec, "data");
    let mut total = 0;
    for (k, v) in data.into_iter().flatten() {
        for m in names::config_map_key(k) {
            errs.push(invalid(&data_path.key(k), V::s(k), &m));
        }
        total += data_len(v, true);
    }
    if total > MAX_DATA_SIZE {
        errs.push(field::too_long(&data_path, MAX_DATA_SIZE));
    }
    let has = |k: &str| data.is_some_and(|d| d.contains_key(k));
    match s(sec, "type") {
        "kubernetes.io/service-account-token" => {
            let name = field::field(field::field(sec, "metadata"), "annotations")
                .get("kubernetes.io/service-account.name")
                .and_then(Value::as_str)
                .unwrap_or("");
            if name.is_empty() {
                errs.push(required(
                    &Path::new("metadata")
                        .child("annotations")
                        .key("kubernetes.io/service-account.name"),
                    "",
                ));
            }
        }
        t @ ("kubernetes.io/dockercfg" | "kubernetes.io/dockerconfigjson") => {
            let key = if t == "kubernetes.io/dockercfg" {
                ".dockercfg"
            } else {
                ".dockerconfigjson"
            };
            match data.and_then(|d| d.get(key)) {
                None => errs.push(required(&data_path.key(key), "")),
                Some(v) => {
                    if let Some(e) = go_json_map_error(&decoded(v)) {
                        errs.push(invalid(
                            &data_path.key(key),
                            V::s("<secret contents redacted>"),
                            &e,
                        ));
                    }
                }
            }
        }
        // Username or password may be empty, but one of them must be there.
        "kubernetes.io/basic-auth" if !has("username") && !has("password") => {
            errs.push(required(&data_path.key("username"), ""));
            errs.push(required(&data_path.key("password"), ""));
        }
        "kubernetes.io/ssh-auth"
            if data
                .and_then(|d| d.get("ssh-privatekey"))
                .is_none_or(|v| data_len(v, true) == 0) =>
        {
            errs.push(required(&data_path.key("ssh-privatekey"), ""));
        }
        "kubernetes.io/tls" => {
            for key in ["tls.crt", "tls.key"] {
                if !has(key) {
                    errs.push(required(&data_path.key(key), ""));
                }
            }
        }
        _ => {}
    }
    errs
}

/// `ValidateSecretUpdate`.
pub(crate) fn secret_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    let (nt, ot) = (s(new, "type"), s(old, "type"));
    if nt != ot {
        errs.push(invalid(&Path::new("type"), V::s(nt), "field is immutable"));
    }
    if boolean(old, "immutable") == Some(true) {
        let msg = "field is immutable when `immutable` is set";
        if boolean(new, "immutable") != Some(true) {
            errs.push(forbidden(&Path::new("immutable"), msg));
        }
        if !field::sem_eq(new.get("data"), old.get("data")) {
            errs.push(forbidden(&Path::new("data"), msg));
        }
    }
    errs.extend(secret(new));
    errs
}

// Namespaces, nodes, service accounts.

pub(crate) fn namespace(ns: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(ns, false, NameRule::Label, &meta_path());
    let fp = Path::new("spec").child("finalizers");
    for f in arr(field::field(ns, "spec"), "finalizers") {
        let f = f.as_str().unwrap_or("");
        errs.extend(meta::label_name(f, &fp));
        errs.extend(meta::kube_finalizer_name(f, &fp));
    }
    errs
}

/// `validateNodeTaints` (upstream reports these under `metadata.taints`).
fn node_taints(taints: &[Value], path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let mut unique: Vec<(&str, &str)> = Vec::new();
    for (i, t) in taints.iter().enumerate() {
        let p = path.index(i);
        let (key, value, effect) = (s(t, "key"), s(t, "value"), s(t, "effect"));
        errs.extend(meta::label_name(key, &p.child("key")));
        let msgs = names::label_value(value);
        if !msgs.is_empty() {
            errs.push(invalid(&p.child("value"), V::s(value), &msgs.join(";")));
        }
        errs.extend(pod::taint_effect(effect, false, &p.child("effect")));
        if unique.contains(&(effect, key)) {
            let mut c = duplicate(
                &p,
                V::Raw(format!(
                    "core.Taint{{Key:{}, Value:{}, Effect:{}, TimeAdded:(*v1.Time)(nil)}}",
                    go_quote(key),
                    go_quote(value),
                    go_quote(effect)
                )),
            );
            c.message
                .push_str(": taints must be unique by key and effect pair");
            errs.push(c);
            continue;
        }
        unique.push((effect, key));
    }
    errs
}

fn node_resources(node: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    let status = field::field(node, "status");
    for key in ["capacity", "allocatable"] {
        for (k, v) in obj(status, key).into_iter().flatten() {
            let p = Path::new("status").child(key).child(k);
            match Quantity::from_json(v) {
                Err(e) => errs.push(invalid(&p, V::s(v.as_str().unwrap_or("")), e)),
                Ok(q) if q.nanos < 0 => errs.push(invalid(
                    &p,
                    V::S(q.canonical()),
                    "must be greater than or equal to 0",
                )),
                Ok(_) => {}
            }
        }
    }
    errs
}

pub(crate) fn node(n: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(n, false, NameRule::Subdomain, &meta_path());
    let spec = field::field(n, "spec");
    errs.extend(node_taints(
        arr(spec, "taints"),
        &meta_path().child("taints"),
    ));
    errs.extend(node_resources(n));
    let cidrs = arr(spec, "podCIDRs");
    let cp = Path::new("spec").child("podCIDRs");
    for (i, c) in cidrs.iter().enumerate() {
        let c = c.as_str().unwrap_or("");
        if !valid_cidr(c) {
            errs.push(invalid(
                &cp.index(i),
                V::s(c),
                "must be a valid CIDR value, (e.g. 10.9.8.0/24 or 2001:db8::/64)",
            ));
        }
    }
    if cidrs.len() > 1 {
        let v4 = cidrs
            .iter()
            .filter(|c| {
                c.as_str()
                    .and_then(|c| c.split('/').next())
                    .and_then(names::parse_ip)
                    .is_some_and(|a| a.is_ipv4())
            })
            .count();
        if v4 != 1 || cidrs.len() > 2 {
            errs.push(invalid(
                &cp,
                V::Raw(field::go_string_slice(
                    spec.get("podCIDRs").and_then(Value::as_array),
                )),
                "may specify no more than one CIDR for each IP family",
            ));
        }
    }
    errs
}

pub(crate) fn node_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    errs.extend(node_resources(new));
    let ns = field::field(new, "spec");
    let os = field::field(old, "spec");
    let mut addrs: Vec<&Value> = Vec::new();
    for (i, a) in arr(field::field(new, "status"), "addresses")
        .iter()
        .enumerate()
    {
        if addrs.contains(&a) {
            errs.push(duplicate(
                &Path::new("status").child("addresses").index(i),
                V::Raw(format!(
                    "core.NodeAddress{{Type:{}, Address:{}}}",
                    go_quote(s(a, "type")),
                    go_quote(s(a, "address"))
                )),
            ));
        }
        addrs.push(a);
    }
    let (oc, nc) = (arr(os, "podCIDRs"), arr(ns, "podCIDRs"));
    if !oc.is_empty() {
        let msg = "node updates may not change podCIDR except from \"\" to valid";
        if oc.len() != nc.len() {
            errs.push(forbidden(&Path::new("spec").child("podCIDRs"), msg));
        } else {
            for (o, n) in oc.iter().zip(nc) {
                if o != n {
                    errs.push(forbidden(&Path::new("spec").child("podCIDRs"), msg));
                }
            }
        }
    }
    let opid = s(os, "providerID");
    if !opid.is_empty() && opid != s(ns, "providerID") {
        errs.push(forbidden(
            &Path::new("spec").child("providerID"),
            "node updates may not change providerID except from \"\" to valid",
        ));
    }
    errs.extend(node_taints(arr(ns, "taints"), &meta_path().child("taints")));
    if s(ns, "externalID") != s(os, "externalID") {
        errs.push(forbidden(
            &Path::new("spec").child("externalID"),
            "may not be updated",
        ));
    }
    errs
}

// Events (core/v1 and events.k8s.io/v1).

/// The internal field names of an event, read from either API version's JSON.
struct EventView<'a> {
    ev: &'a Value,
    events_api: bool,
}

impl<'a> EventView<'a> {
    fn get(&self, internal: &str) -> Option<&'a Value> {
        let key = if self.events_api {
            match internal {
                "involvedObject" => "regarding",
                "message" => "note",
                "source" => "deprecatedSource",
                "firstTimestamp" => "deprecatedFirstTimestamp",
                "lastTimestamp" => "deprecatedLastTimestamp",
                "count" => "deprecatedCount",
                other => other,
            }
        } else {
            internal
        };
        set(self.ev, key)
    }

    fn str(&self, internal: &str) -> &'a str {
        self.get(internal).and_then(Value::as_str).unwrap_or("")
    }
}

/// `legacyValidateEvent`.
fn legacy_event(v: &EventView) -> Vec<Cause> {
    let mut errs = Vec::new();
    let ns = s(field::field(v.ev, "metadata"), "namespace");
    let involved_ns = v.get("involvedObject").map_or("", |o| s(o, "namespace"));
    let p = Path::new("involvedObject").child("namespace");
    let mismatch = || invalid(&p, V::s(involved_ns), "does not match event.namespace");
    if v.get("eventTime").is_none() {
        if involved_ns.is_empty() {
            if !ns.is_empty() && ns != "default" {
                errs.push(mismatch());
            }
        } else if ns != involved_ns {
            errs.push(mismatch());
        }
    } else {
        if involved_ns.is_empty() && ns != "default" && ns != "kube-system" {
            errs.push(mismatch());
        }
        let rc = v.str("reportingController");
        if rc.is_empty() {
            errs.push(required(&Path::new("reportingController"), ""));
        }
        errs.extend(meta::qualified_name(rc, &Path::new("reportingController")));
        for (key, limit) in [("reportingInstance", 128), ("action", 128), ("reason", 128)] {
            let val = v.str(key);
            if val.is_empty() {
                errs.push(required(&Path::new(key), ""));
            }
            if val.len() > limit {
                errs.push(invalid(
                    &Path::new(key),
                    V::s(""),
                    &format!("can have at most {limit} characters"),
                ));
            }
        }
        if v.str("message").len() > 1024 {
            errs.push(invalid(
                &Path::new("message"),
                V::s(""),
                "can have at most 1024 characters",
            ));
        }
    }
    for m in names::dns1123_subdomain(ns) {
        errs.push(invalid(&Path::new("namespace"), V::s(ns), &m));
    }
    errs
}

fn event_series(v: &EventView) -> Vec<Cause> {
    let mut errs = Vec::new();
    if let Some(series) = v.get("series") {
        if int(series, "count").unwrap_or(0) < 2 {
            errs.push(invalid(
                &Path::new("series.count"),
                V::s(""),
                "should be at least 2",
            ));
        }
        if set(series, "lastObservedTime").is_none() {
            errs.push(required(&Path::new("series.lastObservedTime"), ""));
        }
    }
    errs
}

pub(crate) fn event_create(ev: &Value, events_api: bool) -> Vec<Cause> {
    let v = EventView { ev, events_api };
    let mut errs = legacy_event(&v);
    if !events_api {
        return errs;
    }
    errs.extend(meta::object_meta(
        ev,
        true,
        NameRule::Subdomain,
        &meta_path(),
    ));
    errs.extend(event_series(&v));
    if v.get("eventTime").is_none() {
        errs.push(required(&Path::new("eventTime"), ""));
    }
    let ty = v.str("type");
    if ty != "Normal" && ty != "Warning" {
        errs.push(invalid(
            &Path::new("type"),
            V::s(""),
            &format!("has invalid value: {ty}"),
        ));
    }
    for key in ["firstTimestamp", "lastTimestamp"] {
        if v.get(key).is_some() {
            errs.push(invalid(&Path::new(key), V::s(""), "needs to be unset"));
        }
    }
    if v.get("count").and_then(Value::as_i64).unwrap_or(0) != 0 {
        errs.push(invalid(&Path::new("count"), V::s(""), "needs to be unset"));
    }
    if let Some(src) = v.get("source") {
        if !s(src, "component").is_empty() || !s(src, "host").is_empty() {
            errs.push(invalid(&Path::new("source"), V::s(""), "needs to be unset"));
        }
    }
    errs
}

pub(crate) fn event_update(new: &Value, old: &Value, events_api: bool) -> Vec<Cause> {
    let nv = EventView {
        ev: new,
        events_api,
    };
    let ov = EventView {
        ev: old,
        events_api,
    };
    let mut errs = legacy_event(&nv);
    if !events_api {
        return errs;
    }
    errs.extend(meta::object_meta_update(new, old, &meta_path()));
    if !field::sem_eq(nv.get("series"), ov.get("series")) {
        errs.extend(event_series(&nv));
    }
    for key in [
        "involvedObject",
        "reason",
        "message",
        "source",
        "firstTimestamp",
        "lastTimestamp",
        "count",
        "reason",
        "type",
        "eventTime",
        "action",
        "related",
        "reportingController",
        "reportingInstance",
    ] {
        let (n, o) = (nv.get(key), ov.get(key));
        if !field::sem_eq(n, o) {
            let value = match n {
                Some(Value::String(x)) => V::s(x),
                Some(Value::Number(x)) => V::I(x.as_i64().unwrap_or(0)),
                Some(other) => V::Raw(other.to_string()),
                None => V::Raw("null".into()),
            };
            errs.push(invalid(&Path::new(key), value, "field is immutable"));
        }
    }
    errs
}

// Leases.

pub(crate) fn lease_spec(lease: &Value) -> Vec<Cause> {
    let mut errs = Vec::new();
    let spec = field::field(lease, "spec");
    let sp = Path::new("spec");
    if let Some(d) = int(spec, "leaseDurationSeconds") {
        if d <= 0 {
            errs.push(invalid(
                &sp.child("leaseDurationSeconds"),
                V::I(d),
                "must be greater than 0",
            ));
        }
    }
    if let Some(t) = int(spec, "leaseTransitions") {
        if t < 0 {
            errs.push(invalid(
                &sp.child("leaseTransitions"),
                V::I(t),
                "must be greater than or equal to 0",
            ));
        }
    }
    let strategy = spec.get("strategy").and_then(Value::as_str);
    if let Some(st) = strategy {
        if st != "OldestEmulationVersion" {
            errs.push(not_supported(
                &sp.child("strategy"),
                V::s(st),
                &["OldestEmulationVersion"],
            ));
        }
    }
    if spec
        .get("preferredHolder")
        .and_then(Value::as_str)
        .is_some_and(|h| !h.is_empty())
        && strategy.is_none_or(str::is_empty)
    {
        errs.push(forbidden(
            &sp.child("preferredHolder"),
            "may only be specified if `strategy` is defined",
        ));
    }
    errs
}

// Persistent volumes and claims.

fn access_modes(modes: &[Value], path: &Path) -> Vec<Cause> {
    let supported = [
        "ReadOnlyMany",
        "ReadWriteMany",
        "ReadWriteOnce",
        "ReadWriteOncePod",
    ];
    let mut errs = Vec::new();
    let (mut rwop, mut other) = (false, false);
    for m in modes {
        let m = m.as_str().unwrap_or("");
        if !supported.contains(&m) {
            errs.push(not_supported(path, V::s(m), &supported));
        }
        if m == "ReadWriteOncePod" {
            rwop = true;
        } else if supported.contains(&m) {
            other = true;
        }
    }
    if rwop && other {
        errs.push(forbidden(
            path,
            "may not use ReadWriteOncePod with other access modes",
        ));
    }
    errs
}

/// `ValidatePersistentVolumeClaimSpec`.
pub(crate) fn pvc_spec(spec: &Value, path: &Path) -> Vec<Cause> {
    let mut errs = Vec::new();
    let modes = arr(spec, "accessModes");
    if modes.is_empty() {
        errs.push(required(
            &path.child("accessModes"),
            "at least 1 access mode is required",
        ));
    }
    if let Some(sel) = set(spec, "selector") {
        errs.extend(meta::label_selector(sel, &path.child("selector")));
    }
    errs.extend(access_modes(modes, &path.child("accessModes")));
    let storage_path = path.child("resources").key("storage");
    match obj(field::field(spec, "resources"), "requests").and_then(|r| r.get("storage")) {
        None => errs.push(required(&storage_path, "")),
        Some(v) => match Quantity::from_json(v) {
            Err(e) => errs.push(invalid(&storage_path, V::s(v.as_str().unwrap_or("")), e)),
            Ok(q) if q.nanos <= 0 => errs.push(invalid(
                &storage_path,
                V::S(q.canonical()),
                "must be greater than zero",
            )),
            Ok(_) => {}
        },
    }
    if let Some(sc) = spec
        .get("storageClassName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        for m in names::dns1123_subdomain(sc) {
            errs.push(invalid(&path.child("storageClassName"), V::s(sc), &m));
        }
    }
    if let Some(vm) = spec.get("volumeMode").and_then(Value::as_str) {
        if vm != "Block" && vm != "Filesystem" {
            errs.push(not_supported(
                &path.child("volumeMode"),
                V::s(vm),
                &["Block", "Filesystem"],
            ));
        }
    }
    for key in ["dataSource", "dataSourceRef"] {
        if let Some(ds) = set(spec, key) {
            let p = path.child(key);
            if s(ds, "name").is_empty() {
                errs.push(required(&p.child("name"), ""));
            }
            let kind = s(ds, "kind");
            if kind.is_empty() {
                errs.push(required(&p.child("kind"), ""));
            }
            let group = s(ds, "apiGroup");
            if group.is_empty() && kind != "PersistentVolumeClaim" {
                errs.push(invalid(
                    &p,
                    V::s(kind),
                    "must be 'PersistentVolumeClaim' when referencing the default apiGroup",
                ));
            }
            if !group.is_empty() {
                for m in names::dns1123_subdomain(group) {
                    errs.push(invalid(&p.child("apiGroup"), V::s(group), &m));
                }
            }
        }
    }
    errs
}

pub(crate) fn pvc(claim: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(claim, true, NameRule::Subdomain, &meta_path());
    errs.extend(pvc_spec(field::field(claim, "spec"), &Path::new("spec")));
    errs
}

/// `ValidatePersistentVolumeClaimUpdate`.
pub(crate) fn pvc_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta_update(new, old, &meta_path());
    errs.extend(pvc(new));
    let ns = field::field(new, "spec");
    let os = field::field(old, "spec");
    let mut n = ns.clone();
    let mut o = os.clone();
    if s(os, "volumeName").is_empty() {
        if let Some(m) = o.as_object_mut() {
            match ns.get("volumeName") {
                Some(v) => m.insert("volumeName".into(), v.clone()),
                None => m.remove("volumeName"),
            };
        }
    }
    // Setting a storage class where none was is allowed.
    if set(os, "storageClassName").is_none() && set(ns, "storageClassName").is_some() {
        if let Some(m) = n.as_object_mut() {
            m.remove("storageClassName");
        }
    }
    let bound = s(field::field(new, "status"), "phase") == "Bound";
    if bound {
        let old_storage = obj(field::field(os, "resources"), "requests")
            .and_then(|r| r.get("storage"))
            .cloned();
        if let Some(req) = n
            .pointer_mut("/resources/requests")
            .and_then(Value::as_object_mut)
        {
            match old_storage {
                Some(v) => req.insert("storage".into(), v),
                None => req.remove("storage"),
            };
        }
        if let Some(m) = n.as_object_mut() {
            if m.contains_key("volumeAttributesClassName") {
                match os.get("volumeAttributesClassName") {
                    Some(v) => m.insert("volumeAttributesClassName".into(), v.clone()),
                    None => m.remove("volumeAttributesClassName"),
                };
            }
        }
    }
    if !field::sem_eq(Some(&n), Some(&o)) {
        errs.push(forbidden(
            &Path::new("spec"),
            &format!(
                "spec is immutable after creation except resources.requests and volumeAttributesClassName for bound claims\n{}",
                pod::spec_diff(&o, &n)
            ),
        ));
    }
    let size = |spec: &Value| {
        obj(field::field(spec, "resources"), "requests")
            .and_then(|r| r.get("storage"))
            .and_then(|q| Quantity::from_json(q).ok())
            .map_or(0, |q| q.nanos)
    };
    let status_size = obj(field::field(old, "status"), "capacity")
        .and_then(|c| c.get("storage"))
        .and_then(|q| Quantity::from_json(q).ok())
        .map_or(0, |q| q.nanos);
    if size(ns) < size(os) && size(ns) <= status_size {
        errs.push(forbidden(
            &Path::new("spec")
                .child("resources")
                .child("requests")
                .child("storage"),
            "field can not be less than status.capacity",
        ));
    }
    if ns.get("volumeMode") != os.get("volumeMode") {
        let v = ns
            .get("volumeMode")
            .and_then(Value::as_str)
            .map_or(V::Raw("null".into()), V::s);
        errs.push(invalid(&Path::new("volumeMode"), v, "field is immutable"));
    }
    errs
}

const PV_SOURCES: &[&str] = &[
    "hostPath",
    "gcePersistentDisk",
    "awsElasticBlockStore",
    "glusterfs",
    "flocker",
    "nfs",
    "rbd",
    "quobyte",
    "cephfs",
    "iscsi",
    "cinder",
    "fc",
    "flexVolume",
    "azureFile",
    "vsphereVolume",
    "photonPersistentDisk",
    "portworxVolume",
    "azureDisk",
    "scaleIO",
    "local",
    "storageos",
    "csi",
];

/// `ValidatePersistentVolume` (the source-specific checks are limited to counting them and
/// the common ones: host path, local, NFS and CSI).
pub(crate) fn pv(vol: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(vol, false, NameRule::Subdomain, &meta_path());
    let spec = field::field(vol, "spec");
    let sp = Path::new("spec");
    let modes = arr(spec, "accessModes");
    if modes.is_empty() {
        errs.push(required(&sp.child("accessModes"), ""));
    }
    errs.extend(access_modes(modes, &sp.child("accessModes")));
    let cap = obj(spec, "capacity");
    if cap.is_none_or(Map::is_empty) {
        errs.push(required(&sp.child("capacity"), ""));
    }
    if cap.is_none_or(|c| !c.contains_key("storage") || c.len() > 1) {
        errs.push(not_supported(
            &sp.child("capacity"),
            V::Raw(go_resource_list(cap)),
            &["storage"],
        ));
    }
    for (k, v) in cap.into_iter().flatten() {
        let p = sp.child("capacity").key(k);
        match Quantity::from_json(v) {
            Err(e) => errs.push(invalid(&p, V::s(v.as_str().unwrap_or("")), e)),
            Ok(q) if q.nanos <= 0 => {
                if q.nanos < 0 {
                    errs.push(invalid(
                        &p,
                        V::I(i64::try_from(q.nanos / 1_000_000_000).unwrap_or(0)),
                        "must be a valid resource quantity",
                    ));
                }
                errs.push(invalid(
                    &p,
                    V::S(q.canonical()),
                    "must be greater than zero",
                ));
            }
            Ok(_) => {}
        }
    }
    if let Some(rp) = spec
        .get("persistentVolumeReclaimPolicy")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        if !["Delete", "Recycle", "Retain"].contains(&rp) {
            errs.push(not_supported(
                &sp.child("persistentVolumeReclaimPolicy"),
                V::s(rp),
                &["Delete", "Recycle", "Retain"],
            ));
        }
    }
    let mut count = 0;
    for key in PV_SOURCES {
        let Some(src) = set(spec, key) else { continue };
        if count > 0 && *key != "flexVolume" {
            errs.push(forbidden(
                &sp.child(key),
                "may not specify more than 1 volume type",
            ));
            continue;
        }
        count += 1;
        match *key {
            "hostPath" | "local" => {
                let hp = s(src, "path");
                if hp.is_empty() {
                    errs.push(required(&sp.child(key).child("path"), ""));
                } else if hp.split('/').any(|x| x == "..") {
                    errs.push(invalid(
                        &sp.child(key).child("path"),
                        V::s(hp),
                        "must not contain '..'",
                    ));
                }
                if *key == "local" && set(spec, "nodeAffinity").is_none() {
                    errs.push(required(
                        &sp.child("nodeAffinity"),
                        "Local volume requires node affinity",
                    ));
                }
            }
            "nfs" => {
                if s(src, "server").is_empty() {
                    errs.push(required(&sp.child("nfs").child("server"), ""));
                }
                let np = s(src, "path");
                if np.is_empty() {
                    errs.push(required(&sp.child("nfs").child("path"), ""));
                }
                if !np.starts_with('/') {
                    errs.push(invalid(
                        &sp.child("nfs").child("path"),
                        V::s(np),
                        "must be an absolute path",
                    ));
                }
            }
            "csi" => {
                errs.extend(pod::csi_driver_name(
                    s(src, "driver"),
                    &sp.child("csi").child("driver"),
                ));
                if s(src, "volumeHandle").is_empty() {
                    errs.push(required(&sp.child("csi").child("volumeHandle"), ""));
                }
            }
            _ => {}
        }
    }
    if count == 0 {
        errs.push(required(&sp, "must specify a volume type"));
    }
    if let Some(sc) = spec
        .get("storageClassName")
        .and_then(Value::as_str)
        .filter(|s| !s.is_empty())
    {
        for m in names::dns1123_subdomain(sc) {
            errs.push(invalid(&sp.child("storageClassName"), V::s(sc), &m));
        }
    }
    if let Some(vm) = spec.get("volumeMode").and_then(Value::as_str) {
        if vm != "Block" && vm != "Filesystem" {
            errs.push(not_supported(
                &sp.child("volumeMode"),
                V::s(vm),
                &["Block", "Filesystem"],
            ));
        }
    }
    errs
}

/// `%#v` of a `core.ResourceList` (keys sorted, quantities by their `String()`).
fn go_resource_list(list: Option<&Map<String, Value>>) -> String {
    match list {
        None => "core.ResourceList(nil)".into(),
        Some(m) => format!(
            "core.ResourceList{{{}}}",
            m.iter()
                .map(|(k, v)| {
                    let q = Quantity::from_json(v)
                        .map(|q| q.canonical())
                        .unwrap_or_default();
                    format!("{}:{}", go_quote(k), go_quote(&q))
                })
                .collect::<Vec<_>>()
                .join(", ")
        ),
    }
}

pub(crate) fn pv_update(new: &Value, old: &Value) -> Vec<Cause> {
    let mut errs = pv(new);
    let ns = field::field(new, "spec");
    let os = field::field(old, "spec");
    let source_changed = PV_SOURCES.iter().any(|k| {
        let (mut n, o) = (ns.get(*k).cloned(), os.get(*k));
        // A CSI expansion secret may be added once.
        if *k == "csi" && o.is_some_and(|o| set(o, "controllerExpandSecretRef").is_none()) {
            if let Some(m) = n.as_mut().and_then(Value::as_object_mut) {
                m.remove("controllerExpandSecretRef");
            }
        }
        !field::sem_eq(n.as_ref(), o)
    });
    if source_changed {
        errs.push(forbidden(
            &Path::new("spec").child("persistentvolumesource"),
            &format!(
                "spec.persistentvolumesource is immutable after creation\n{}",
                pod::spec_diff(os, ns)
            ),
        ));
    }
    if ns.get("volumeMode") != os.get("volumeMode") {
        let v = ns
            .get("volumeMode")
            .and_then(Value::as_str)
            .map_or(V::Raw("null".into()), V::s);
        errs.push(invalid(&Path::new("volumeMode"), v, "field is immutable"));
    }
    if set(os, "nodeAffinity").is_some()
        && !field::sem_eq(ns.get("nodeAffinity"), os.get("nodeAffinity"))
    {
        errs.push(invalid(
            &Path::new("nodeAffinity"),
            V::Raw("&core.VolumeNodeAffinity{...}".into()),
            "field is immutable, except for updating from beta label to GA",
        ));
    }
    errs
}

// RBAC.

fn policy_rules(rules: &[Value], namespaced: bool) -> Vec<Cause> {
    let mut errs = Vec::new();
    for (i, rule) in rules.iter().enumerate() {
        let p = Path::new("rules").index(i);
        if arr(rule, "verbs").is_empty() {
            errs.push(required(
                &p.child("verbs"),
                "verbs must contain at least one value",
            ));
        }
        let urls = arr(rule, "nonResourceURLs");
        if !urls.is_empty() {
            let v = V::Raw(field::go_string_slice(
                rule.get("nonResourceURLs").and_then(Value::as_array),
            ));
            if namespaced {
                errs.push(invalid(
                    &p.child("nonResourceURLs"),
                    v.clone(),
                    "namespaced rules cannot apply to non-resource URLs",
                ));
            }
            if !arr(rule, "apiGroups").is_empty()
                || !arr(rule, "resources").is_empty()
                || !arr(rule, "resourceNames").is_empty()
            {
                errs.push(invalid(
                    &p.child("nonResourceURLs"),
                    v,
                    "rules cannot apply to both regular resources and non-resource URLs",
                ));
            }
            continue;
        }
        if arr(rule, "apiGroups").is_empty() {
            errs.push(required(
                &p.child("apiGroups"),
                "resource rules must supply at least one api group",
            ));
        }
        if arr(rule, "resources").is_empty() {
            errs.push(required(
                &p.child("resources"),
                "resource rules must supply at least one resource",
            ));
        }
    }
    errs
}

pub(crate) fn role(r: &Value, cluster: bool) -> Vec<Cause> {
    let mut errs = meta::object_meta(r, !cluster, NameRule::PathSegment, &meta_path());
    errs.extend(policy_rules(arr(r, "rules"), !cluster));
    if cluster {
        if let Some(agg) = set(r, "aggregationRule") {
            let p = Path::new("aggregationRule").child("clusterRoleSelectors");
            let sels = arr(agg, "clusterRoleSelectors");
            if sels.is_empty() {
                errs.push(required(
                    &p,
                    "at least one clusterRoleSelector required if aggregationRule is non-nil",
                ));
            }
            for (i, sel) in sels.iter().enumerate() {
                errs.extend(meta::label_selector(sel, &p.index(i)));
            }
        }
    }
    errs
}

pub(crate) fn role_binding(rb: &Value, cluster: bool) -> Vec<Cause> {
    let mut errs = meta::object_meta(rb, !cluster, NameRule::PathSegment, &meta_path());
    let rr = field::field(rb, "roleRef");
    let rp = Path::new("roleRef");
    let group = s(rr, "apiGroup");
    if group != "rbac.authorization.k8s.io" {
        errs.push(not_supported(
            &rp.child("apiGroup"),
            V::s(group),
            &["rbac.authorization.k8s.io"],
        ));
    }
    let kind = s(rr, "kind");
    if cluster {
        if kind != "ClusterRole" {
            errs.push(not_supported(
                &rp.child("kind"),
                V::s(kind),
                &["ClusterRole"],
            ));
        }
    } else if kind != "Role" && kind != "ClusterRole" {
        errs.push(not_supported(
            &rp.child("kind"),
            V::s(kind),
            &["Role", "ClusterRole"],
        ));
    }
    let name = s(rr, "name");
    if name.is_empty() {
        errs.push(required(&rp.child("name"), ""));
    } else {
        for m in names::path_segment(name) {
            errs.push(invalid(&rp.child("name"), V::s(name), &m));
        }
    }
    for (i, subject) in arr(rb, "subjects").iter().enumerate() {
        let p = Path::new("subjects").index(i);
        let name = s(subject, "name");
        if name.is_empty() {
            errs.push(required(&p.child("name"), ""));
        }
        let group = s(subject, "apiGroup");
        match s(subject, "kind") {
            "ServiceAccount" => {
                if !name.is_empty() {
                    for m in names::dns1123_subdomain(name) {
                        errs.push(invalid(&p.child("name"), V::s(name), &m));
                    }
                }
                if !group.is_empty() {
                    errs.push(not_supported(&p.child("apiGroup"), V::s(group), &[""]));
                }
                if cluster && s(subject, "namespace").is_empty() {
                    errs.push(required(&p.child("namespace"), ""));
                }
            }
            "User" | "Group" => {
                if group != "rbac.authorization.k8s.io" {
                    errs.push(not_supported(
                        &p.child("apiGroup"),
                        V::s(group),
                        &["rbac.authorization.k8s.io"],
                    ));
                }
            }
            other => errs.push(not_supported(
                &p.child("kind"),
                V::s(other),
                &["ServiceAccount", "User", "Group"],
            )),
        }
    }
    errs
}

pub(crate) fn role_binding_update(new: &Value, old: &Value, cluster: bool) -> Vec<Cause> {
    let mut errs = role_binding(new, cluster);
    errs.extend(meta::object_meta_update(new, old, &meta_path()));
    let (nr, or) = (field::field(new, "roleRef"), field::field(old, "roleRef"));
    if ["apiGroup", "kind", "name"]
        .iter()
        .any(|k| s(nr, k) != s(or, k))
    {
        errs.push(invalid(
            &Path::new("roleRef"),
            V::Raw(format!(
                "rbac.RoleRef{{APIGroup:{}, Kind:{}, Name:{}}}",
                go_quote(s(nr, "apiGroup")),
                go_quote(s(nr, "kind")),
                go_quote(s(nr, "name"))
            )),
            "cannot change roleRef",
        ));
    }
    errs
}

// Policy and autoscaling.

/// `ValidatePositiveIntOrPercent` (+ `IsNotMoreThan100Percent` when `check_100`).
pub(crate) fn int_or_percent(v: &Value, path: &Path, check_100: bool) -> Vec<Cause> {
    let mut errs = match v {
        Value::String(sv) => names::percent(sv)
            .into_iter()
            .map(|m| invalid(path, V::Raw(sv.clone()), &m))
            .collect(),
        other => meta::nonnegative(other.as_i64().unwrap_or(0), path),
    };
    if check_100 {
        errs.extend(not_more_than_100(v, path));
    }
    errs
}

/// `IsNotMoreThan100Percent`.
pub(crate) fn not_more_than_100(v: &Value, path: &Path) -> Vec<Cause> {
    match v {
        Value::String(sv) if percent_value(sv).is_some_and(|n| n > 100) => vec![invalid(
            path,
            V::Raw(sv.clone()),
            "must not be greater than 100%",
        )],
        _ => Vec::new(),
    }
}

pub(crate) fn percent_value(s: &str) -> Option<i64> {
    if names::percent(s).is_empty() {
        s.trim_end_matches('%').parse().ok()
    } else {
        None
    }
}

pub(crate) fn pdb(p: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(p, true, NameRule::Subdomain, &meta_path());
    let spec = field::field(p, "spec");
    let sp = Path::new("spec");
    if set(spec, "minAvailable").is_some() && set(spec, "maxUnavailable").is_some() {
        errs.push(invalid(
            &sp,
            V::Raw("policy.PodDisruptionBudgetSpec{...}".into()),
            "minAvailable and maxUnavailable cannot be both set",
        ));
    }
    for key in ["minAvailable", "maxUnavailable"] {
        if let Some(v) = set(spec, key) {
            errs.extend(int_or_percent(v, &sp.child(key), true));
        }
    }
    if let Some(sel) = set(spec, "selector") {
        errs.extend(meta::label_selector(sel, &sp.child("selector")));
    }
    if let Some(policy) = spec
        .get("unhealthyPodEvictionPolicy")
        .and_then(Value::as_str)
    {
        if policy != "AlwaysAllow" && policy != "IfHealthyBudget" {
            errs.push(not_supported(
                &sp.child("unhealthyPodEvictionPolicy"),
                V::s(policy),
                &["AlwaysAllow", "IfHealthyBudget"],
            ));
        }
    }
    errs
}

/// `validateHorizontalPodAutoscalerSpec` (replica bounds and the scale target).
pub(crate) fn hpa(h: &Value) -> Vec<Cause> {
    let mut errs = meta::object_meta(h, true, NameRule::Subdomain, &meta_path());
    let spec = field::field(h, "spec");
    let sp = Path::new("spec");
    let min = int(spec, "minReplicas");
    let max = int(spec, "maxReplicas").unwrap_or(0);
    if let Some(m) = min.filter(|m| *m < 1) {
        errs.push(invalid(
            &sp.child("minReplicas"),
            V::I(m),
            "must be greater than or equal to 1",
        ));
    }
    if max < 1 {
        errs.push(invalid(
            &sp.child("maxReplicas"),
            V::I(max),
            "must be greater than 0",
        ));
    }
    if min.is_some_and(|m| max < m) {
        errs.push(invalid(
            &sp.child("maxReplicas"),
            V::I(max),
            "must be greater than or equal to `minReplicas`",
        ));
    }
    let target = field::field(spec, "scaleTargetRef");
    let tp = sp.child("scaleTargetRef");
    for key in ["kind", "name"] {
        let v = s(target, key);
        if v.is_empty() {
            errs.push(required(&tp.child(key), ""));
        } else {
            for m in names::path_segment(v) {
                errs.push(invalid(&tp.child(key), V::s(v), &m));
            }
        }
    }
    errs
}
