//! The TLS server configuration: rustls on the aws-lc-rs provider, the
//! server certificate from PEM files, and optional client certificates.

use std::path::Path;
use std::sync::Arc;

use rustls::crypto::CryptoProvider;
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use rustls::sign::{CertifiedKey, SigningKey, SingleCertAndKey};
use rustls::{RootCertStore, ServerConfig};

use crate::config::ConfigError;

fn e(field: &str, problem: String, fix: &str) -> ConfigError {
    ConfigError { field: field.into(), problem, fix: fix.into() }
}

/// The TLS provider: aws-lc-rs, narrowed to FIPS-approved suites and
/// groups when built against the FIPS module.
pub fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if service::fips::enabled() {
        // Built against the FIPS module: offer only approved suites and groups.
        provider.cipher_suites.retain(|s| s.fips());
        provider.kx_groups.retain(|g| g.fips());
    }
    Arc::new(provider)
}

/// Whether the gateway's TLS runs in FIPS mode, as status, metrics and
/// the start-up line report it: aws-lc does ([`service::fips::enabled`]),
/// and rustls calls `config` FIPS (approved suites, groups and signature
/// algorithms only; TLS 1.2 only with the extended master secret).
pub fn fips(config: &ServerConfig) -> bool {
    service::fips::enabled() && config.fips()
}

/// The certificates of a PEM text (`what` names it in errors): at least one.
pub fn certificates(field: &str, what: &Path, pem: &[u8]) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    let certs: Vec<CertificateDer<'static>> = CertificateDer::pem_slice_iter(pem)
        .collect::<Result<Vec<_>, _>>()
        .map_err(|err| e(field, format!("{}: {err}", what.display()), "give PEM certificates"))?;
    if certs.is_empty() {
        return Err(e(field, format!("{} holds no certificate", what.display()), "give PEM certificates"));
    }
    Ok(certs)
}

fn read(field: &str, path: &Path) -> Result<Vec<u8>, ConfigError> {
    std::fs::read(path).map_err(|err| e(field, format!("{}: {err}", path.display()), "point it at a readable PEM file"))
}

/// The server certificate chain (`server.cert`): public, so the
/// network-facing process reads it itself.
pub fn load_chain(cert: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    certificates("server.cert", cert, &read("server.cert", cert)?)
}

/// The client CA certificates (`auth.client_ca`).
pub fn load_client_ca(ca: &Path) -> Result<Vec<CertificateDer<'static>>, ConfigError> {
    certificates("auth.client_ca", ca, &read("auth.client_ca", ca)?)
}

/// The server private key (`server.key`) as a signing key of `provider`.
/// Only the keeper calls this when the gateway runs separated
/// ([`crate::keeper`]); `--check-config` and in-process gateways too.
pub fn load_key(provider: &CryptoProvider, key: &Path) -> Result<Arc<dyn SigningKey>, ConfigError> {
    let der = PrivateKeyDer::from_pem_file(key).map_err(|err| {
        e("server.key", format!("{}: {err}", key.display()), "give a PEM private key (PKCS#8, SEC1 or PKCS#1)")
    })?;
    provider.key_provider.load_private_key(der).map_err(|err| {
        e("server.key", format!("{}: {err}", key.display()), "give an RSA, ECDSA (P-256/P-384) or Ed25519 key")
    })
}

/// Builds the rustls configuration with the key in this process. With
/// `client_ca`, clients *may* present a certificate signed by it
/// (certificate login); without one they log in with a password.
pub fn server_config(cert: &Path, key: &Path, client_ca: Option<&Path>) -> Result<Arc<ServerConfig>, ConfigError> {
    let provider = provider();
    let chain = load_chain(cert)?;
    let key = load_key(&provider, key)?;
    let client_ca = client_ca.map(load_client_ca).transpose()?;
    server_config_with_key(provider, chain, key, client_ca)
}

/// Builds the rustls configuration around `key`, which may sign here or
/// ask the keeper ([`crate::keeper::RemoteKey`]). The key must match the
/// certificate's public key.
pub fn server_config_with_key(
    provider: Arc<CryptoProvider>,
    chain: Vec<CertificateDer<'static>>,
    key: Arc<dyn SigningKey>,
    client_ca: Option<Vec<CertificateDer<'static>>>,
) -> Result<Arc<ServerConfig>, ConfigError> {
    let certified = CertifiedKey::new(chain, key);
    certified.keys_match().map_err(|err| e("server.key", err.to_string(), "the key must match the certificate"))?;
    let builder = ServerConfig::builder_with_provider(provider.clone())
        .with_safe_default_protocol_versions()
        .map_err(|err| e("server", err.to_string(), "report this: the TLS provider lacks TLS 1.2/1.3"))?;
    let builder = match client_ca {
        Some(ca) => {
            let mut roots = RootCertStore::empty();
            for c in ca {
                roots.add(c).map_err(|err| e("auth.client_ca", err.to_string(), "give a valid CA certificate"))?;
            }
            let verifier = WebPkiClientVerifier::builder_with_provider(Arc::new(roots), provider)
                .allow_unauthenticated()
                .build()
                .map_err(|err| e("auth.client_ca", err.to_string(), "give a valid CA certificate"))?;
            builder.with_client_cert_verifier(verifier)
        }
        None => builder.with_no_client_auth(),
    };
    let mut config = builder.with_cert_resolver(Arc::new(SingleCertAndKey::from(certified)));
    config.alpn_protocols.clear();
    Ok(Arc::new(config))
}

/// The user name in a verified client certificate: its subject CN.
pub fn certificate_user(cert: &CertificateDer<'_>) -> Option<String> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert.as_ref()).ok()?;
    let cn = parsed.subject().iter_common_name().next()?.as_str().ok()?.to_string();
    crate::passwd::valid_user(&cn).then_some(cn)
}

/// The OpenConnect DTLS key: the TLS exporter with label
/// `EXPORTER-openconnect-psk`, no context, 32 bytes (openconnect-protocol.md §5.3).
pub fn dtls_psk(conn: &rustls::ServerConnection) -> Option<zeroize::Zeroizing<Vec<u8>>> {
    let mut out = zeroize::Zeroizing::new(vec![0u8; 32]);
    conn.export_keying_material(&mut out[..], b"EXPORTER-openconnect-psk", None).ok()?;
    Some(out)
}

/// What a connection's completed TLS handshake established, for the core.
pub fn facts(conn: &rustls::ServerConnection) -> crate::core::TlsFacts {
    crate::core::TlsFacts {
        dtls_psk: dtls_psk(conn),
        certificate_user: conn.peer_certificates().and_then(|chain| chain.first()).and_then(certificate_user),
    }
}
