//! HTTPS for the data API: the certificate and key of `tls_cert` /
//! `tls_key`, rustls with the ring provider (the one the rest of the
//! workspace builds; aws-lc would need cmake and a C toolchain for ARM).

use std::sync::Arc;

use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};

use crate::config::{Config, ConfigError, invalid};

/// The server's TLS settings, or None for plain HTTP. Errors name the field.
pub fn server_config(cfg: &Config) -> Result<Option<Arc<rustls::ServerConfig>>, ConfigError> {
    let (Some(cert), Some(key)) = (&cfg.tls_cert, &cfg.tls_key) else {
        return Ok(None);
    };
    let chain = CertificateDer::pem_file_iter(cert)
        .and_then(|certs| certs.collect::<Result<Vec<_>, _>>())
        .map_err(|e| invalid("tls_cert", format!("{}: {e}", cert.display())))?;
    if chain.is_empty() {
        return Err(invalid(
            "tls_cert",
            format!("{}: no certificate", cert.display()),
        ));
    }
    let key = PrivateKeyDer::from_pem_file(key)
        .map_err(|e| invalid("tls_key", format!("{}: {e}", key.display())))?;
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut config = rustls::ServerConfig::builder_with_provider(provider)
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("tls_cert", e.to_string()))?
        .with_no_client_auth()
        .with_single_cert(chain, key)
        .map_err(|e| invalid("tls_key", format!("does not match tls_cert: {e}")))?;
    config.alpn_protocols = vec![b"h2".to_vec(), b"http/1.1".to_vec()];
    Ok(Some(Arc::new(config)))
}
