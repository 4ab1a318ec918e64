//! Request paths to what they address, after upstream's `RequestInfoFactory`
//! (k8s.io/apiserver/pkg/endpoints/request/requestinfo.go). Pure.

/// What a request path addresses.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum Route {
    /// `/api`
    CoreVersions,
    /// `/apis`
    Groups,
    /// `/apis/{group}`
    Group(String),
    /// `/api/v1`, `/apis/{group}/{version}`
    Resources { group: String, version: String },
    /// A resource collection, object or subresource.
    Resource(Target),
}

#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Target {
    pub group: String,
    pub version: String,
    pub namespace: Option<String>,
    pub resource: String,
    pub name: Option<String>,
    pub subresource: Option<String>,
}

/// Subresources of a namespace object, which upstream parses specially:
/// `/api/v1/namespaces/{name}/status` addresses the namespace, not a resource "status".
const NAMESPACE_SUBRESOURCES: &[&str] = &["status", "finalize"];

/// Parses an API path (`/api/...` or `/apis/...`); `None` for any other path.
pub fn parse(path: &str) -> Option<Route> {
    let parts: Vec<&str> = path
        .trim_matches('/')
        .split('/')
        .filter(|p| !p.is_empty())
        .collect();
    let (group, version, rest) = match parts.as_slice() {
        ["api"] => return Some(Route::CoreVersions),
        ["apis"] => return Some(Route::Groups),
        ["apis", group] => return Some(Route::Group((*group).to_owned())),
        ["api", version, rest @ ..] => ("", *version, rest),
        ["apis", group, version, rest @ ..] => (*group, *version, rest),
        _ => return None,
    };
    if rest.is_empty() {
        return Some(Route::Resources {
            group: group.to_owned(),
            version: version.to_owned(),
        });
    }
    let mut namespace = None;
    let mut rest = rest;
    if rest[0] == "namespaces" && rest.len() > 1 {
        namespace = Some(rest[1].to_owned());
        if rest.len() > 2 && !NAMESPACE_SUBRESOURCES.contains(&rest[2]) {
            rest = &rest[2..];
        }
    }
    let target = match rest {
        [resource] => Target::new(group, version, namespace, resource, None, None),
        [resource, name] => Target::new(group, version, namespace, resource, Some(name), None),
        [resource, name, sub] => {
            Target::new(group, version, namespace, resource, Some(name), Some(sub))
        }
        _ => return None,
    };
    // `/api/v1/namespaces/x` and `/api/v1/namespaces/x/status` address the namespace object
    // itself, which is cluster-scoped.
    let target = if target.resource == "namespaces" {
        Target {
            namespace: None,
            ..target
        }
    } else {
        target
    };
    Some(Route::Resource(target))
}

impl Target {
    fn new(
        group: &str,
        version: &str,
        namespace: Option<String>,
        resource: &str,
        name: Option<&str>,
        sub: Option<&str>,
    ) -> Self {
        Self {
            group: group.to_owned(),
            version: version.to_owned(),
            namespace,
            resource: resource.to_owned(),
            name: name.map(str::to_owned),
            subresource: sub.map(str::to_owned),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn t(
        g: &str,
        v: &str,
        ns: Option<&str>,
        r: &str,
        n: Option<&str>,
        s: Option<&str>,
    ) -> Option<Route> {
        Some(Route::Resource(Target::new(
            g,
            v,
            ns.map(str::to_owned),
            r,
            n,
            s,
        )))
    }

    #[test]
    fn paths_parse_as_upstream() {
        assert_eq!(parse("/api"), Some(Route::CoreVersions));
        assert_eq!(parse("/apis"), Some(Route::Groups));
        assert_eq!(parse("/apis/apps"), Some(Route::Group("apps".into())));
        assert_eq!(
            parse("/api/v1"),
            Some(Route::Resources {
                group: "".into(),
                version: "v1".into()
            })
        );
        assert_eq!(parse("/api/v1/pods"), t("", "v1", None, "pods", None, None));
        assert_eq!(
            parse("/api/v1/namespaces/default/pods"),
            t("", "v1", Some("default"), "pods", None, None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/default/pods/web/status"),
            t(
                "",
                "v1",
                Some("default"),
                "pods",
                Some("web"),
                Some("status")
            )
        );
        assert_eq!(
            parse("/api/v1/namespaces"),
            t("", "v1", None, "namespaces", None, None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/kube-system"),
            t("", "v1", None, "namespaces", Some("kube-system"), None)
        );
        assert_eq!(
            parse("/api/v1/namespaces/x/finalize"),
            t("", "v1", None, "namespaces", Some("x"), Some("finalize"))
        );
        assert_eq!(
            parse("/api/v1/nodes/n1"),
            t("", "v1", None, "nodes", Some("n1"), None)
        );
        assert_eq!(
            parse("/apis/apps/v1/namespaces/a/deployments/d/scale"),
            t(
                "apps",
                "v1",
                Some("a"),
                "deployments",
                Some("d"),
                Some("scale")
            )
        );
        assert_eq!(parse("/healthz"), None);
        assert_eq!(parse("/api/v1/namespaces/a/pods/b/c/d"), None);
    }
}
