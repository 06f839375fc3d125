//! TLS for the server's two ports (rustls with the ring provider):
//!
//! - the client port, with `[server] tls_cert` and `tls_key`: HTTPS and WSS for clients;
//! - the cluster port, with `[cluster] tls_cert`, `tls_key` and `tls_ca`: **mutual** TLS,
//!   where each node proves it holds a certificate signed by the cluster's CA. The cluster
//!   token is still required on top, so a certificate alone (or the secret alone) does not
//!   make a node. The nodes' certificates must name the host or IP address the other nodes
//!   use for them (`--cluster-peers`), as any TLS client checks.

use crate::error::{KalamError, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::Arc;

fn invalid(what: &str, path: &Path, e: impl std::fmt::Display) -> KalamError {
    KalamError::InvalidRequest(format!("TLS: cannot use {what} {}: {e}", path.display()))
}

fn certificates(what: &str, path: &Path) -> Result<Vec<CertificateDer<'static>>> {
    let certs = CertificateDer::pem_file_iter(path)
        .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
        .map_err(|e| invalid(what, path, e))?;
    match certs.is_empty() {
        true => Err(invalid(what, path, "no certificate in it")),
        false => Ok(certs),
    }
}

/// A certificate chain and its private key, both PEM.
fn chain_and_key(cert: &Path, key: &Path) -> Result<(Vec<CertificateDer<'static>>, PrivateKeyDer<'static>)> {
    let chain = certificates("the certificate", cert)?;
    let private = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid("the key", key, e))?;
    Ok((chain, private))
}

fn provider() -> Arc<rustls::crypto::CryptoProvider> {
    Arc::new(rustls::crypto::ring::default_provider())
}

/// HTTPS on the client port: the server's certificate chain and key (PEM).
pub(crate) fn client_port(cert: &Path, key: &Path) -> Result<tokio_rustls::TlsAcceptor> {
    let (chain, private) = chain_and_key(cert, key)?;
    let server = rustls::ServerConfig::builder_with_provider(provider())
        .with_safe_default_protocol_versions()
        .map_err(|e| invalid("the certificate", cert, e))?
        .with_no_client_auth()
        .with_single_cert(chain, private)
        .map_err(|e| invalid("the certificate and key", cert, e))?;
    Ok(tokio_rustls::TlsAcceptor::from(Arc::new(server)))
}

/// Mutual TLS between cluster nodes: how a node serves its cluster port and how it reaches
/// the others.
pub(crate) struct MutualTls {
    /// Accepts connections, requiring a client certificate of the CA.
    pub(crate) acceptor: tokio_rustls::TlsAcceptor,
    /// Connects to other nodes, presenting this node's certificate.
    pub(crate) client: rustls::ClientConfig,
}

impl MutualTls {
    /// Reads the node's certificate chain and key and the CA (all PEM).
    pub(crate) fn load(cert: &Path, key: &Path, ca: &Path) -> Result<MutualTls> {
        let (chain, private) = chain_and_key(cert, key)?;
        let mut roots = rustls::RootCertStore::empty();
        for authority in certificates("the CA", ca)? {
            roots.add(authority).map_err(|e| invalid("the CA", ca, e))?;
        }
        let roots = Arc::new(roots);
        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider())
            .build()
            .map_err(|e| invalid("the CA", ca, e))?;
        let server = rustls::ServerConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("the certificate", cert, e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), private.clone_key())
            .map_err(|e| invalid("the certificate and key", cert, e))?;
        let client = rustls::ClientConfig::builder_with_provider(provider())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("the certificate", cert, e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, private)
            .map_err(|e| invalid("the certificate and key", cert, e))?;
        Ok(MutualTls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)), client })
    }
}
