//! How the client knows its gateway: CA certificates (`--cafile`, else the
//! system's bundle) and/or pins of the gateway's key (`--servercert
//! pin-sha256:…`, as openconnect takes them). A pin alone accepts the key it
//! names whatever the certificate says (openconnect's meaning: an operator
//! who pinned the key decided); with a CA file too, both must hold.

use std::path::Path;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, CryptoProvider};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, DigitallySignedStruct, RootCertStore, SignatureScheme};
use service::pin::{pin_base64, spki_pin, Pin};

/// Debian's bundle of the system's trusted CAs (package ca-certificates).
pub const SYSTEM_CA_BUNDLE: &str = "/etc/ssl/certs/ca-certificates.crt";

/// What the client trusts and presents.
#[derive(Debug, Clone, Default)]
pub struct Trust {
    /// PEM CA certificates; none: the system bundle, unless pins are given.
    pub cafile: Option<std::path::PathBuf>,
    pub pins: Vec<Pin>,
    /// A client certificate chain and its key (PEM), for certificate login.
    pub certificate: Option<(std::path::PathBuf, std::path::PathBuf)>,
}

fn certificates(path: &Path) -> Result<Vec<CertificateDer<'static>>, String> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no PEM certificate", path.display()));
    }
    Ok(certs)
}

/// The rustls client configuration for `trust`.
pub fn client_config(trust: &Trust) -> Result<Arc<ClientConfig>, String> {
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if aws_lc_rs::try_fips_mode().is_ok() {
        provider.cipher_suites.retain(|s| s.fips());
        provider.kx_groups.retain(|g| g.fips());
    }
    let provider = Arc::new(provider);
    let cafile = match (&trust.cafile, trust.pins.is_empty()) {
        (Some(f), _) => Some(f.clone()),
        (None, true) => Some(SYSTEM_CA_BUNDLE.into()),
        (None, false) => None,
    };
    let webpki = match cafile {
        None => None,
        Some(f) => {
            let mut roots = RootCertStore::empty();
            for c in certificates(&f)? {
                roots.add(c).map_err(|e| format!("{}: {e}", f.display()))?;
            }
            let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
                .build()
                .map_err(|e| format!("{}: {e}", f.display()))?;
            Some(v)
        }
    };
    let verifier = Arc::new(GatewayVerifier { pins: trust.pins.clone(), webpki, provider: provider.clone() });
    let builder = ClientConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| e.to_string())?
        .dangerous()
        .with_custom_certificate_verifier(verifier);
    let config = match &trust.certificate {
        None => builder.with_no_client_auth(),
        Some((cert, key)) => {
            let chain = certificates(cert)?;
            let key = PrivateKeyDer::from_pem_file(key).map_err(|e| format!("{}: {e}", key.display()))?;
            builder.with_client_auth_cert(chain, key).map_err(|e| format!("client certificate: {e}"))?
        }
    };
    Ok(Arc::new(config))
}

/// `pin-sha256:BASE64` of a DER certificate's key, as `--servercert` takes it.
pub fn pin_of(cert: &[u8]) -> Option<String> {
    spki(cert).map(|s| format!("pin-sha256:{}", pin_base64(&spki_pin(&s))))
}

/// The SubjectPublicKeyInfo of a DER certificate.
fn spki(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.tbs_certificate.subject_pki.raw.to_vec())
}

#[derive(Debug)]
struct GatewayVerifier {
    pins: Vec<Pin>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    provider: Arc<CryptoProvider>,
}

impl ServerCertVerifier for GatewayVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(v) = &self.webpki {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now)?;
        }
        if !self.pins.is_empty() {
            let spki = spki(end_entity).ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
            let got = spki_pin(&spki);
            let known = self.pins.iter().any(|p| aws_lc_rs::constant_time::verify_slices_are_equal(p, &got).is_ok());
            if !known {
                return Err(rustls::Error::InvalidCertificate(CertificateError::Other(rustls::OtherError(Arc::new(
                    PinMismatch(pin_base64(&got)),
                )))));
            }
        }
        Ok(ServerCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls12_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.provider.signature_verification_algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.provider.signature_verification_algorithms.supported_schemes()
    }
}

/// The gateway presented a key no `--servercert` pin names.
#[derive(Debug)]
struct PinMismatch(String);

impl std::fmt::Display for PinMismatch {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "the gateway's key is pin-sha256:{}, which no --servercert names", self.0)
    }
}

impl std::error::Error for PinMismatch {}
