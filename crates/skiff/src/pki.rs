//! The cluster's certificates, generated on first start and reused afterwards: a CA, the
//! API server's serving certificate (SANs: loopback, the host's addresses and name, the
//! `kubernetes` Service names and IP, and `--tls-san` extras; regenerated when that list
//! changes) and the admin client certificate (`system:admin` in `system:masters`). Nodes
//! that join get client certificates of their own from [`Pki::issue_client_cert`].

use std::net::IpAddr;
use std::path::Path;

use anyhow::{Context, Result};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    Issuer, KeyPair, KeyUsagePurpose, SanType,
};

/// PEM files of the cluster's TLS material.
#[derive(Clone)]
pub struct Pki {
    pub ca_cert: String,
    /// The CA's private key (PEM), to sign what joining nodes are issued.
    pub ca_key: String,
    pub serving_cert: String,
    pub serving_key: String,
    pub admin_cert: String,
    pub admin_key: String,
}

fn write_private(path: &Path, contents: &str) -> Result<()> {
    use std::io::Write;
    use std::os::unix::fs::OpenOptionsExt;
    let tmp = path.with_extension("tmp");
    let mut f = std::fs::OpenOptions::new()
        .write(true)
        .create(true)
        .truncate(true)
        .mode(0o600)
        .open(&tmp)?;
    f.write_all(contents.as_bytes())?;
    f.sync_all()?;
    std::fs::rename(&tmp, path)?;
    Ok(())
}

fn read(path: &Path) -> Result<Option<String>> {
    match std::fs::read_to_string(path) {
        Ok(s) => Ok(Some(s)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading {}", path.display())),
    }
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut dn = DistinguishedName::new();
    dn.push(DnType::CommonName, cn);
    if let Some(o) = org {
        dn.push(DnType::OrganizationName, o);
    }
    dn
}

/// The names the serving certificate must carry.
pub fn serving_sans(extra: &[String], service_ip: IpAddr) -> Vec<String> {
    let mut sans: Vec<String> = vec![
        "localhost".into(),
        "127.0.0.1".into(),
        "::1".into(),
        "kubernetes".into(),
        "kubernetes.default".into(),
        "kubernetes.default.svc".into(),
        "kubernetes.default.svc.cluster.local".into(),
        service_ip.to_string(),
    ];
    if let Ok(host) = std::fs::read_to_string("/proc/sys/kernel/hostname") {
        let host = host.trim();
        if !host.is_empty() {
            sans.push(host.to_owned());
        }
    }
    if let Ok(ifaces) = if_addrs::get_if_addrs() {
        sans.extend(ifaces.into_iter().map(|i| i.ip().to_string()));
    }
    sans.extend(extra.iter().cloned());
    let mut seen = std::collections::HashSet::new();
    sans.retain(|s| seen.insert(s.clone()));
    sans
}

impl Pki {
    /// Loads the material in `dir`, generating what is missing.
    pub fn load_or_create(dir: &Path, sans: &[String]) -> Result<Self> {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        let p = |name: &str| dir.join(name);
        let (ca_cert, ca_key) = match (read(&p("ca.crt"))?, read(&p("ca.key"))?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::new(Vec::<String>::new())?;
                params.distinguished_name = dn("skiff-ca", None);
                params.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
                params.key_usages = vec![
                    KeyUsagePurpose::KeyCertSign,
                    KeyUsagePurpose::CrlSign,
                    KeyUsagePurpose::DigitalSignature,
                ];
                params.not_after = rcgen::date_time_ymd(2036, 1, 1);
                let cert = params.self_signed(&key)?;
                write_private(&p("ca.key"), &key.serialize_pem())?;
                write_private(&p("ca.crt"), &cert.pem())?;
                (cert.pem(), key.serialize_pem())
            }
        };
        let issuer = issuer(&ca_cert, &ca_key)?;

        let sans_text = sans.join("\n");
        let serving = match (
            read(&p("serving.crt"))?,
            read(&p("serving.key"))?,
            read(&p("serving.sans"))?,
        ) {
            (Some(c), Some(k), Some(s)) if s == sans_text => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::default();
                params.distinguished_name = dn("kube-apiserver", None);
                params.subject_alt_names = sans
                    .iter()
                    .map(|s| match s.parse::<IpAddr>() {
                        Ok(ip) => Ok(SanType::IpAddress(ip)),
                        Err(_) => Ok(SanType::DnsName(s.clone().try_into()?)),
                    })
                    .collect::<Result<_, rcgen::Error>>()?;
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                params.not_after = rcgen::date_time_ymd(2036, 1, 1);
                let cert = params.signed_by(&key, &issuer)?;
                write_private(&p("serving.key"), &key.serialize_pem())?;
                write_private(&p("serving.crt"), &cert.pem())?;
                write_private(&p("serving.sans"), &sans_text)?;
                (cert.pem(), key.serialize_pem())
            }
        };
        let admin = match (read(&p("admin.crt"))?, read(&p("admin.key"))?) {
            (Some(c), Some(k)) => (c, k),
            _ => {
                let key = KeyPair::generate()?;
                let mut params = CertificateParams::default();
                params.distinguished_name = dn("system:admin", Some("system:masters"));
                params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
                params.key_usages = vec![
                    KeyUsagePurpose::DigitalSignature,
                    KeyUsagePurpose::KeyEncipherment,
                ];
                params.not_after = rcgen::date_time_ymd(2036, 1, 1);
                let cert = params.signed_by(&key, &issuer)?;
                write_private(&p("admin.key"), &key.serialize_pem())?;
                write_private(&p("admin.crt"), &cert.pem())?;
                (cert.pem(), key.serialize_pem())
            }
        };
        Ok(Self {
            ca_cert,
            ca_key,
            serving_cert: serving.0,
            serving_key: serving.1,
            admin_cert: admin.0,
            admin_key: admin.1,
        })
    }
}

fn issuer(ca_cert: &str, ca_key: &str) -> Result<Issuer<'static, KeyPair>> {
    let key = KeyPair::from_pem(ca_key).context("reading the CA key")?;
    Issuer::from_ca_cert_pem(ca_cert, key).context("reading the CA certificate")
}

impl Pki {
    /// A fresh key and a client certificate for user `user` in `groups` (CN and O, what the
    /// API server's client certificate authentication reads), signed by the cluster CA.
    /// Returns (certificate, key), both PEM.
    pub fn issue_client_cert(&self, user: &str, groups: &[&str]) -> Result<(String, String)> {
        let issuer = issuer(&self.ca_cert, &self.ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        let mut name = DistinguishedName::new();
        name.push(DnType::CommonName, user);
        for group in groups {
            name.push(DnType::OrganizationName, *group);
        }
        params.distinguished_name = name;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The API server's client identity towards kubelets (upstream's
/// `kube-apiserver-kubelet-client`); skiff-kubelet's server lets it in.
pub const KUBELET_CLIENT_CN: &str = skiff_kubelet::server::KUBELET_CLIENT_CN;

impl Pki {
    /// The API server's kubelet client certificate in `dir` (`kubelet-client.{crt,key}`,
    /// <data-dir>/server/tls/), issued on first use and kept: CN
    /// [`KUBELET_CLIENT_CN`] in `system:masters`. Returns (certificate, key), PEM.
    pub fn kubelet_client_cert(&self, dir: &Path) -> Result<(String, String)> {
        let (crt, key) = (
            dir.join("kubelet-client.crt"),
            dir.join("kubelet-client.key"),
        );
        if let (Some(c), Some(k)) = (read(&crt)?, read(&key)?) {
            return Ok((c, k));
        }
        let (c, k) = self.issue_client_cert(KUBELET_CLIENT_CN, &["system:masters"])?;
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
        write_private(&key, &k)?;
        write_private(&crt, &c)?;
        Ok((c, k))
    }

    /// A kubelet serving certificate for `node` (CN `system:node:<node>` in `system:nodes`,
    /// as upstream's kubelet serving CSRs), valid for the node name and `ips`.
    /// Returns (certificate, key), PEM.
    pub fn issue_kubelet_serving_cert(
        &self,
        node: &str,
        ips: &[IpAddr],
    ) -> Result<(String, String)> {
        let issuer = issuer(&self.ca_cert, &self.ca_key)?;
        let key = KeyPair::generate()?;
        let mut params = CertificateParams::default();
        params.distinguished_name = dn(&format!("system:node:{node}"), Some("system:nodes"));
        let mut sans = vec![SanType::DnsName(node.to_owned().try_into()?)];
        sans.extend(ips.iter().map(|ip| SanType::IpAddress(*ip)));
        params.subject_alt_names = sans;
        params.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
        params.key_usages = vec![
            KeyUsagePurpose::DigitalSignature,
            KeyUsagePurpose::KeyEncipherment,
        ];
        params.not_after = rcgen::date_time_ymd(2036, 1, 1);
        let cert = params.signed_by(&key, &issuer)?;
        Ok((cert.pem(), key.serialize_pem()))
    }
}

/// The admin kubeconfig for a server at `url`.
pub fn kubeconfig(pki: &Pki, url: &str) -> String {
    use base64::Engine;
    let b64 = |s: &str| base64::engine::general_purpose::STANDARD.encode(s.as_bytes());
    format!(
        "apiVersion: v1
kind: Config
clusters:
- name: skiff
  cluster:
    server: {url}
    certificate-authority-data: {ca}
users:
- name: skiff-admin
  user:
    client-certificate-data: {cert}
    client-key-data: {key}
contexts:
- name: skiff
  context:
    cluster: skiff
    user: skiff-admin
current-context: skiff
preferences: {{}}
",
        ca = b64(&pki.ca_cert),
        cert = b64(&pki.admin_cert),
        key = b64(&pki.admin_key),
    )
}

/// Writes the kubeconfig (mode 0600, atomically).
pub fn write_kubeconfig(path: &Path, contents: &str) -> Result<()> {
    if let Some(parent) = path.parent() {
        std::fs::create_dir_all(parent)
            .with_context(|| format!("creating {}", parent.display()))?;
    }
    write_private(path, contents).with_context(|| format!("writing {}", path.display()))
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A restart with the same names keeps every certificate; a new name makes a new
    /// serving certificate under the same CA, and the admin's stays valid.
    #[test]
    fn certificates_are_reused_until_the_names_change() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let sans = vec!["127.0.0.1".to_owned(), "skiff.example.test".to_owned()];
        let first = Pki::load_or_create(dir.path(), &sans)?;
        let again = Pki::load_or_create(dir.path(), &sans)?;
        assert_eq!(first.ca_cert, again.ca_cert);
        assert_eq!(first.serving_cert, again.serving_cert);
        assert_eq!(first.serving_key, again.serving_key);
        let mut more = sans.clone();
        more.push("another.example.test".into());
        let changed = Pki::load_or_create(dir.path(), &more)?;
        assert_eq!(first.ca_cert, changed.ca_cert);
        assert_ne!(first.serving_cert, changed.serving_cert);
        assert_eq!(first.admin_cert, changed.admin_cert);
        Ok(())
    }

    /// The kubelet's serving certificate and the API server's kubelet client certificate
    /// make a TLS config skiff-kubelet's server accepts; the client one is kept on disk.
    #[test]
    fn kubelet_certificates() -> Result<()> {
        let dir = tempfile::tempdir()?;
        let pki = Pki::load_or_create(dir.path(), &["127.0.0.1".to_owned()])?;
        let ip: IpAddr = "10.0.0.7".parse()?;
        let (cert, key) = pki.issue_kubelet_serving_cert("node-a", &[ip])?;
        skiff_kubelet::server::tls_config(cert.as_bytes(), key.as_bytes(), pki.ca_cert.as_bytes())
            .map_err(|e| anyhow::anyhow!("{e}"))?;
        // Verified as the API server's kubelet client verifies it: chain to the CA, the
        // node's name and IP.
        use rustls::client::danger::ServerCertVerifier;
        use rustls_pki_types::pem::PemObject;
        use rustls_pki_types::{CertificateDer, ServerName, UnixTime};
        let mut roots = rustls::RootCertStore::empty();
        roots.add(CertificateDer::from_pem_slice(pki.ca_cert.as_bytes())?)?;
        let verifier = rustls::client::WebPkiServerVerifier::builder_with_provider(
            std::sync::Arc::new(roots),
            std::sync::Arc::new(rustls::crypto::ring::default_provider()),
        )
        .build()?;
        let der = CertificateDer::from_pem_slice(cert.as_bytes())?;
        for name in ["node-a", "10.0.0.7"] {
            verifier.verify_server_cert(
                &der,
                &[],
                &ServerName::try_from(name)?,
                &[],
                UnixTime::now(),
            )?;
        }
        assert!(verifier
            .verify_server_cert(
                &der,
                &[],
                &ServerName::try_from("node-b")?,
                &[],
                UnixTime::now()
            )
            .is_err());
        let tls = dir.path().join("tls");
        let first = pki.kubelet_client_cert(&tls)?;
        assert_eq!(pki.kubelet_client_cert(&tls)?, first);
        let der = CertificateDer::from_pem_slice(first.0.as_bytes())?;
        let id = skiff_kubelet::server::identity(der.as_ref());
        assert_eq!(id.user, KUBELET_CLIENT_CN);
        assert!(skiff_kubelet::server::authorized(&id));
        Ok(())
    }

    /// A node's certificate names it as the API server's authenticator reads names.
    #[test]
    fn issued_client_certificates_carry_the_user_and_groups() -> Result<()> {
        use rustls_pki_types::pem::PemObject;
        let dir = tempfile::tempdir()?;
        let pki = Pki::load_or_create(dir.path(), &["127.0.0.1".to_owned()])?;
        let (cert, key) = pki.issue_client_cert("system:node:sim-0", &["system:nodes"])?;
        assert!(key.contains("PRIVATE KEY"));
        let der = rustls_pki_types::CertificateDer::from_pem_slice(cert.as_bytes())?;
        let user = skiff_apiserver::tls::user_from_cert(der.as_ref()).context("a user")?;
        assert_eq!(user.name, "system:node:sim-0");
        assert_eq!(user.groups, vec!["system:nodes".to_owned()]);
        Ok(())
    }
}
