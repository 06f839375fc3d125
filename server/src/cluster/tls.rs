//! Mutual TLS on the cluster port (`cluster.tls_cert`, `tls_key`, `tls_ca`): node-to-node
//! traffic (log entries, forwarded writes, snapshots) is encrypted, and each side proves it
//! holds a certificate signed by the cluster's CA. The cluster token is still required on
//! top, so a certificate alone (or the secret alone) does not make a node.
//!
//! The nodes' certificates must name the host or IP address the other nodes use for them
//! (`--cluster-peers`), as any TLS client checks.

use crate::error::{KalamError, Result};
use rustls::pki_types::pem::PemObject;
use rustls::pki_types::{CertificateDer, PrivateKeyDer};
use rustls::server::WebPkiClientVerifier;
use std::path::Path;
use std::sync::Arc;

/// The TLS settings of one node: how it serves the cluster port and how it reaches the others.
pub(super) struct ClusterTls {
    /// Accepts connections to the cluster port, requiring a client certificate of the CA.
    pub(super) acceptor: tokio_rustls::TlsAcceptor,
    /// Connects to other nodes, presenting this node's certificate.
    pub(super) client: rustls::ClientConfig,
}

fn invalid(what: &str, path: &Path, e: impl std::fmt::Display) -> KalamError {
    KalamError::InvalidRequest(format!("cluster TLS: cannot use {what} {}: {e}", path.display()))
}

impl ClusterTls {
    /// Reads the node's certificate chain and key and the CA (all PEM).
    pub(super) fn load(cert: &Path, key: &Path, ca: &Path) -> Result<ClusterTls> {
        let chain = CertificateDer::pem_file_iter(cert)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| invalid("the certificate", cert, e))?;
        if chain.is_empty() {
            return Err(invalid("the certificate", cert, "no certificate in it"));
        }
        let private = PrivateKeyDer::from_pem_file(key).map_err(|e| invalid("the key", key, e))?;
        let mut roots = rustls::RootCertStore::empty();
        let authorities = CertificateDer::pem_file_iter(ca)
            .and_then(|certs| certs.collect::<std::result::Result<Vec<_>, _>>())
            .map_err(|e| invalid("the CA", ca, e))?;
        for authority in authorities {
            roots.add(authority).map_err(|e| invalid("the CA", ca, e))?;
        }
        if roots.is_empty() {
            return Err(invalid("the CA", ca, "no certificate in it"));
        }
        let roots = Arc::new(roots);
        let provider = Arc::new(rustls::crypto::ring::default_provider());

        let verifier = WebPkiClientVerifier::builder_with_provider(roots.clone(), provider.clone())
            .build()
            .map_err(|e| invalid("the CA", ca, e))?;
        let server = rustls::ServerConfig::builder_with_provider(provider.clone())
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("the certificate", cert, e))?
            .with_client_cert_verifier(verifier)
            .with_single_cert(chain.clone(), private.clone_key())
            .map_err(|e| invalid("the certificate and key", cert, e))?;
        let client = rustls::ClientConfig::builder_with_provider(provider)
            .with_safe_default_protocol_versions()
            .map_err(|e| invalid("the certificate", cert, e))?
            .with_root_certificates(roots)
            .with_client_auth_cert(chain, private)
            .map_err(|e| invalid("the certificate and key", cert, e))?;
        Ok(ClusterTls { acceptor: tokio_rustls::TlsAcceptor::from(Arc::new(server)), client })
    }
}
