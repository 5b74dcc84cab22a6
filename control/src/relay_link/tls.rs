//! The TLS a gateway's relay link runs over: TLS 1.3 to the relay, whose
//! certificate is pinned by its key (`[[relay]] pin_sha256`: the SHA-256
//! of its SubjectPublicKeyInfo, base64, as openconnect's `--servercert
//! pin-sha256:`) and/or verified against a CA (`ca_file`, the certificate
//! naming the relay's IP address); with both, both must hold. The HMAC
//! challenge inside it still proves the gateway's identity to the relay.
//!
//! rustls is a byte transformer here, as in the relay's driver: what the
//! socket gave goes in, frames come out; frames go in, records come out
//! into the link's outbox.

use std::io::Read;
use std::net::SocketAddr;
use std::sync::Arc;

use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::client::WebPkiServerVerifier;
use rustls::crypto::{verify_tls12_signature, verify_tls13_signature, WebPkiSupportedAlgorithms};
use rustls::pki_types::{CertificateDer, ServerName, UnixTime};
use rustls::{CertificateError, ClientConfig, ClientConnection, DigitallySignedStruct, RootCertStore, SignatureScheme};
use service::pin::{pin_base64, spki_pin, Pin};

/// How a gateway knows its relay (at least one of the two).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct RelayTrust {
    /// The SPKI SHA-256 of the relay's link certificate.
    pub pin: Option<Pin>,
    /// CA certificates the relay's link certificate must chain to.
    pub ca: Vec<CertificateDer<'static>>,
}

/// The certificates of a PEM file (`[[relay]] ca_file`).
pub fn ca_certificates(path: &std::path::Path) -> Result<Vec<CertificateDer<'static>>, String> {
    use rustls::pki_types::pem::PemObject;
    let certs: Vec<_> = CertificateDer::pem_file_iter(path)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| format!("{}: {e}", path.display()))?;
    if certs.is_empty() {
        return Err(format!("{} holds no certificate", path.display()));
    }
    Ok(certs)
}

/// The SPKI of a DER certificate.
fn spki(cert: &[u8]) -> Option<Vec<u8>> {
    let (_, parsed) = x509_parser::parse_x509_certificate(cert).ok()?;
    Some(parsed.tbs_certificate.subject_pki.raw.to_vec())
}

/// Checks the relay's certificate against the pin and/or the CA.
#[derive(Debug)]
struct RelayVerifier {
    relay: SocketAddr,
    pin: Option<Pin>,
    webpki: Option<Arc<WebPkiServerVerifier>>,
    algorithms: WebPkiSupportedAlgorithms,
}

impl ServerCertVerifier for RelayVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        server_name: &ServerName<'_>,
        ocsp: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        if let Some(v) = &self.webpki {
            v.verify_server_cert(end_entity, intermediates, server_name, ocsp, now).inspect_err(|e| {
                tracing::error!(relay = %self.relay, error = %e, "the relay's link certificate does not verify against [[relay]] ca_file; refusing the relay");
            })?;
        }
        if let Some(want) = &self.pin {
            let spki = spki(end_entity).ok_or(rustls::Error::InvalidCertificate(CertificateError::BadEncoding))?;
            let got = spki_pin(&spki);
            if aws_lc_rs::constant_time::verify_slices_are_equal(&got, want).is_err() {
                tracing::error!(
                    relay = %self.relay,
                    expected = %pin_base64(want),
                    presented = %pin_base64(&got),
                    "the relay's link certificate does not match [[relay]] pin_sha256; refusing the relay \
                     (a relay that changed its key needs the new pin: it logs link_pin_sha256 at start)"
                );
                return Err(rustls::Error::InvalidCertificate(CertificateError::ApplicationVerificationFailure));
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
        verify_tls12_signature(message, cert, dss, &self.algorithms)
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_tls13_signature(message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The TLS 1.3 client configuration for the link to `relay`.
pub fn client_config(relay: SocketAddr, trust: &RelayTrust) -> Result<Arc<ClientConfig>, rustls::Error> {
    let provider = crate::tls::provider();
    let webpki = if trust.ca.is_empty() {
        None
    } else {
        let mut roots = RootCertStore::empty();
        for c in &trust.ca {
            roots.add(c.clone())?;
        }
        let v = WebPkiServerVerifier::builder_with_provider(Arc::new(roots), provider.clone())
            .build()
            .map_err(|e| rustls::Error::General(e.to_string()))?;
        Some(v)
    };
    let verifier =
        RelayVerifier { relay, pin: trust.pin, webpki, algorithms: provider.signature_verification_algorithms };
    let config = ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    Ok(Arc::new(config))
}

/// One link's TLS.
#[derive(Debug)]
pub(super) struct LinkTls(ClientConnection);

impl LinkTls {
    /// Starts the handshake with the relay at `relay`; the ClientHello is
    /// put in `outbox`.
    pub(super) fn new(
        config: &Arc<ClientConfig>,
        relay: SocketAddr,
        outbox: &mut Vec<u8>,
    ) -> Result<Self, rustls::Error> {
        let mut tls = Self(ClientConnection::new(config.clone(), ServerName::IpAddress(relay.ip().into()))?);
        tls.pending(outbox);
        Ok(tls)
    }

    /// Takes bytes from the socket, appends the plaintext they yield to
    /// `plain` and what TLS sends back to `outbox`. `Err`: the handshake
    /// failed (the relay's certificate among others) or a record did not
    /// authenticate; the alert is in `outbox`.
    pub(super) fn receive(
        &mut self,
        mut cipher: &[u8],
        plain: &mut Vec<u8>,
        outbox: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        let mut result = Ok(());
        while !cipher.is_empty() {
            match self.0.read_tls(&mut cipher) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => {
                    result = Err(rustls::Error::General(e.to_string()));
                    break;
                }
            }
            if let Err(e) = self.0.process_new_packets() {
                result = Err(e);
                break;
            }
            let _ = self.0.reader().read_to_end(plain);
        }
        self.pending(outbox);
        result
    }

    /// Seals `frames` into `outbox` (held by rustls until the handshake ends).
    pub(super) fn seal(&mut self, frames: &[u8], outbox: &mut Vec<u8>) {
        let _ = std::io::Write::write_all(&mut self.0.writer(), frames);
        self.pending(outbox);
    }

    fn pending(&mut self, outbox: &mut Vec<u8>) {
        while self.0.wants_write() {
            if self.0.write_tls(outbox).is_err() {
                break;
            }
        }
    }
}
