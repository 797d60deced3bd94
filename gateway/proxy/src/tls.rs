//! TLS termination: certificates picked by the SNI name of the client hello, replaced on
//! every configuration change without restarting listeners.

use std::collections::HashMap;
use std::fmt;
use std::sync::Arc;

use arc_swap::ArcSwap;
use paved_model::snapshot::{Certificate, PemSource};
use pingora::tls::sign::CertifiedKey;
use pingora::tls::{ClientHello, CryptoProvider, ResolvesServerCert};
use rustls_pki_types::pem::PemObject;
use rustls_pki_types::{CertificateDer, PrivateKeyDer};

use crate::error::ConfigError;

/// Certificates by domain: exact names, and `*.suffix` wildcards by suffix.
#[derive(Default)]
pub struct CertificateSet {
    exact: HashMap<String, Arc<CertifiedKey>>,
    wildcard: HashMap<String, Arc<CertifiedKey>>,
    /// For clients that send no SNI: the first certificate configured.
    default: Option<Arc<CertifiedKey>>,
}

impl CertificateSet {
    /// Loads every certificate of a listener; `listener` names it in errors.
    pub fn load(
        listener: &str,
        certificates: &[Certificate],
        base_dir: &std::path::Path,
    ) -> Result<Self, ConfigError> {
        pingora::tls::install_default_crypto_provider();
        let provider = CryptoProvider::get_default().ok_or_else(|| ConfigError::Tls {
            listener: listener.to_owned(),
            message: "no TLS crypto provider".into(),
        })?;
        let mut set = Self::default();
        for (index, certificate) in certificates.iter().enumerate() {
            let error = |message: String| ConfigError::Tls {
                listener: listener.to_owned(),
                message: format!("certificates[{index}]: {message}"),
            };
            let read = |source: Option<PemSource<'_>>,
                        what: &str|
             -> Result<Vec<u8>, ConfigError> {
                match source {
                    Some(PemSource::Inline(pem)) => Ok(pem.as_bytes().to_vec()),
                    Some(PemSource::File(path)) => {
                        let path = if path.is_absolute() {
                            path.to_path_buf()
                        } else {
                            base_dir.join(path)
                        };
                        std::fs::read(&path)
                            .map_err(|e| error(format!("reading {what} {}: {e}", path.display())))
                    }
                    None => Err(error(format!("no {what}"))),
                }
            };
            let chain_pem = read(certificate.cert_source(), "certificate")?;
            let key_pem = read(certificate.key_source(), "key")?;
            let chain = CertificateDer::pem_slice_iter(&chain_pem)
                .collect::<Result<Vec<_>, _>>()
                .map_err(|e| error(format!("certificate PEM: {e}")))?;
            if chain.is_empty() {
                return Err(error("the certificate PEM holds no certificate".into()));
            }
            let key = PrivateKeyDer::from_pem_slice(&key_pem)
                .map_err(|e| error(format!("key PEM: {e}")))?;
            let certified = Arc::new(
                CertifiedKey::from_der(chain, key, provider)
                    .map_err(|e| error(format!("certificate and key: {e}")))?,
            );
            set.default.get_or_insert_with(|| certified.clone());
            for domain in &certificate.domains {
                let domain = domain.to_ascii_lowercase();
                match domain.strip_prefix("*.") {
                    Some(suffix) => set.wildcard.insert(suffix.to_owned(), certified.clone()),
                    None => set.exact.insert(domain, certified.clone()),
                };
            }
        }
        Ok(set)
    }

    fn pick(&self, server_name: Option<&str>) -> Option<Arc<CertifiedKey>> {
        let Some(name) = server_name.map(str::to_ascii_lowercase) else {
            return self.default.clone();
        };
        self.exact
            .get(&name)
            .or_else(|| {
                name.split_once('.')
                    .and_then(|(_, suffix)| self.wildcard.get(suffix))
            })
            .cloned()
    }
}

/// A resolver whose certificates are swapped on reload.
pub struct SniResolver {
    /// The certificates in force.
    pub certificates: ArcSwap<CertificateSet>,
}

impl fmt::Debug for SniResolver {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str("SniResolver")
    }
}

impl ResolvesServerCert for SniResolver {
    fn resolve(&self, hello: ClientHello<'_>) -> Option<Arc<CertifiedKey>> {
        let found = self.certificates.load().pick(hello.server_name());
        if found.is_none() {
            tracing::debug!(server_name = ?hello.server_name(), "no certificate for the requested name");
        }
        found
    }
}
