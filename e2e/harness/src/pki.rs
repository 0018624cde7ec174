//! The certificate authority, serving and client certificates, and the admin kubeconfig.

use std::fs;
use std::net::{IpAddr, Ipv4Addr};
use std::path::{Path, PathBuf};

use kube::config::{
    AuthInfo, Cluster, Context, Kubeconfig, NamedAuthInfo, NamedCluster, NamedContext,
};
use rcgen::{
    BasicConstraints, CertificateParams, DistinguishedName, DnType, ExtendedKeyUsagePurpose, IsCa,
    KeyPair, KeyUsagePurpose, SanType,
};

use crate::{io_err, Result};

/// The files of the generated PKI.
pub(crate) struct Pki {
    pub(crate) ca_cert: PathBuf,
    pub(crate) serving_cert: PathBuf,
    pub(crate) serving_key: PathBuf,
    pub(crate) admin_cert: PathBuf,
    pub(crate) admin_key: PathBuf,
    pub(crate) sa_key: PathBuf,
    pub(crate) sa_pub: PathBuf,
}

/// Generates the CA, serving, admin and service-account keys and certificates under `root`.
pub(crate) fn write_pki(root: &Path) -> Result<Pki> {
    let dir = root.join("pki");
    fs::create_dir_all(&dir).map_err(io_err("creating the pki dir"))?;
    let write = |name: &str, pem: String| -> Result<PathBuf> {
        let p = dir.join(name);
        fs::write(&p, pem).map_err(io_err(format!("writing {}", p.display())))?;
        Ok(p)
    };

    let ca_key = KeyPair::generate()?;
    let mut ca = CertificateParams::new(Vec::<String>::new())?;
    ca.distinguished_name = dn("kube-harness-ca", None);
    ca.is_ca = IsCa::Ca(BasicConstraints::Unconstrained);
    ca.key_usages = vec![
        KeyUsagePurpose::KeyCertSign,
        KeyUsagePurpose::CrlSign,
        KeyUsagePurpose::DigitalSignature,
    ];
    let ca_cert = ca.self_signed(&ca_key)?;

    let serving_key = KeyPair::generate()?;
    let mut serving = CertificateParams::new(vec![
        "localhost".to_string(),
        "kubernetes".to_string(),
        "kubernetes.default".to_string(),
        "kubernetes.default.svc".to_string(),
    ])?;
    serving.distinguished_name = dn("kube-apiserver", None);
    serving
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::LOCALHOST)));
    serving
        .subject_alt_names
        .push(SanType::IpAddress(IpAddr::V4(Ipv4Addr::new(10, 0, 0, 1))));
    serving.extended_key_usages = vec![ExtendedKeyUsagePurpose::ServerAuth];
    let serving_cert = serving.signed_by(&serving_key, &ca_cert, &ca_key)?;

    let admin_key = KeyPair::generate()?;
    let mut admin = CertificateParams::new(Vec::<String>::new())?;
    admin.distinguished_name = dn("kube-harness-admin", Some("system:masters"));
    admin.extended_key_usages = vec![ExtendedKeyUsagePurpose::ClientAuth];
    let admin_cert = admin.signed_by(&admin_key, &ca_cert, &ca_key)?;

    let sa_key = KeyPair::generate()?;

    Ok(Pki {
        ca_cert: write("ca.crt", ca_cert.pem())?,
        serving_cert: write("apiserver.crt", serving_cert.pem())?,
        serving_key: write("apiserver.key", serving_key.serialize_pem())?,
        admin_cert: write("admin.crt", admin_cert.pem())?,
        admin_key: write("admin.key", admin_key.serialize_pem())?,
        sa_key: write("sa.key", sa_key.serialize_pem())?,
        sa_pub: write("sa.pub", sa_key.public_key_pem())?,
    })
}

fn dn(cn: &str, org: Option<&str>) -> DistinguishedName {
    let mut d = DistinguishedName::new();
    d.push(DnType::CommonName, cn);
    if let Some(o) = org {
        d.push(DnType::OrganizationName, o);
    }
    d
}

/// A kubeconfig for `url` authenticating with the admin client certificate.
pub(crate) fn admin_kubeconfig(url: &str, pki: &Pki) -> Kubeconfig {
    let path = |p: &Path| Some(p.display().to_string());
    Kubeconfig {
        clusters: vec![NamedCluster {
            name: "harness".into(),
            cluster: Some(Cluster {
                server: Some(url.to_string()),
                certificate_authority: path(&pki.ca_cert),
                ..Cluster::default()
            }),
        }],
        auth_infos: vec![NamedAuthInfo {
            name: "admin".into(),
            auth_info: Some(AuthInfo {
                client_certificate: path(&pki.admin_cert),
                client_key: path(&pki.admin_key),
                ..AuthInfo::default()
            }),
        }],
        contexts: vec![NamedContext {
            name: "harness".into(),
            context: Some(Context {
                cluster: "harness".into(),
                user: Some("admin".into()),
                ..Context::default()
            }),
        }],
        current_context: Some("harness".into()),
        api_version: Some("v1".into()),
        kind: Some("Config".into()),
        ..Kubeconfig::default()
    }
}
