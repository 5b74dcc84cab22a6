//! The TLS that gateway links run over: TLS 1.3 (rustls on the aws-lc-rs
//! provider, as the gateway's), the relay's certificate from
//! `[gateway_link]`, pinned by the gateways by its key. Only links are
//! wrapped: a stream a gateway dials back carries a device's own TLS, end
//! to end, and is spliced untouched.
//!
//! rustls is a byte transformer here: the driver feeds it what the socket
//! gave and takes the plaintext for the core; it seals the core's frames
//! into the connection's outbox. The core never sees a record.

use std::io::Read;
use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::{ServerConfig, ServerConnection};
use service::pin::{pin_base64, spki_pin};

use crate::config::{Config, ConfigError};

/// The links' TLS server configuration, and the pin of its key in the
/// form `[[relay]] pin_sha256` takes.
pub fn server_config(config: &Config) -> Result<(Arc<ServerConfig>, String), ConfigError> {
    let (cert, key) = (&config.link_cert, &config.link_key);
    let fix_cert = "give the relay's link certificate chain, PEM (scripts/certs.sh makes relay-link.crt)";
    let chain: Vec<CertificateDer<'static>> = CertificateDer::pem_file_iter(cert)
        .and_then(|it| it.collect::<Result<Vec<_>, _>>())
        .map_err(|e| ConfigError::new("gateway_link.cert", format!("{}: {e}", cert.display()), fix_cert))?;
    if chain.is_empty() {
        return Err(ConfigError::new(
            "gateway_link.cert",
            format!("{} holds no certificate", cert.display()),
            fix_cert,
        ));
    }
    let fix_key = "give the link certificate's private key, PEM (PKCS#8, SEC1 or PKCS#1)";
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| ConfigError::new("gateway_link.key", format!("{}: {e}", key.display()), fix_key))?;
    let mut provider = rustls::crypto::aws_lc_rs::default_provider();
    if service::fips::enabled() {
        provider.cipher_suites.retain(|s| s.fips());
        provider.kx_groups.retain(|g| g.fips());
    }
    let signing = provider
        .key_provider
        .load_private_key(key.clone_key())
        .map_err(|e| ConfigError::new("gateway_link.key", e.to_string(), fix_key))?;
    let pin = signing.public_key().map(|spki| pin_base64(&spki_pin(spki.as_ref()))).unwrap_or_default();
    let tls = ServerConfig::builder_with_provider(Arc::new(provider))
        .with_protocol_versions(&[&rustls::version::TLS13])
        .map_err(|e| ConfigError::new("gateway_link", e.to_string(), "report this: the TLS provider lacks TLS 1.3"))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| ConfigError::new("gateway_link.key", e.to_string(), "the key must match the certificate"))?;
    Ok((Arc::new(tls), pin))
}

/// One link's TLS.
#[derive(Debug)]
pub(super) struct LinkTls(ServerConnection);

impl LinkTls {
    pub(super) fn new(config: &Arc<ServerConfig>) -> Result<Self, rustls::Error> {
        ServerConnection::new(config.clone()).map(Self)
    }

    /// Takes `cipher` (bytes from the socket), appends the plaintext it
    /// yields to `plain` and what TLS must send (handshake, alerts) to
    /// `outbox`. `Err`: the handshake failed or a record did not
    /// authenticate; the alert is in `outbox`, and the link is over.
    pub(super) fn receive(
        &mut self,
        mut cipher: &[u8],
        plain: &mut Vec<u8>,
        outbox: &mut Vec<u8>,
    ) -> Result<(), rustls::Error> {
        let result = self.receive_all(&mut cipher, plain);
        self.pending(outbox);
        result
    }

    fn receive_all(&mut self, cipher: &mut &[u8], plain: &mut Vec<u8>) -> Result<(), rustls::Error> {
        while !cipher.is_empty() {
            match self.0.read_tls(cipher) {
                Ok(0) => break,
                Ok(_) => {}
                Err(e) => return Err(rustls::Error::General(e.to_string())),
            }
            self.0.process_new_packets()?;
            // Drained each time round, so rustls' buffer never fills.
            let _ = self.0.reader().read_to_end(plain);
        }
        Ok(())
    }

    /// Seals `frames` into `outbox`.
    pub(super) fn seal(&mut self, frames: &[u8], outbox: &mut Vec<u8>) {
        // rustls buffers what it cannot send before the handshake ends.
        let _ = std::io::Write::write_all(&mut self.0.writer(), frames);
        self.pending(outbox);
    }

    /// The close_notify, into `outbox`.
    pub(super) fn close(&mut self, outbox: &mut Vec<u8>) {
        self.0.send_close_notify();
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
