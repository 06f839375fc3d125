//! [`ManifestSigner`]: the HMAC that authenticates backup manifests, so that a RESTORE only
//! reads backups this server (or one sharing its backup key) wrote.

use hmac::{Hmac, Mac};
use sha2::Sha256;

/// Signs and checks backup manifests with the server's backup key (`storage.backup_key`, or
/// `{data_dir}/backup-key`).
pub(crate) struct ManifestSigner {
    key: Vec<u8>,
}

impl ManifestSigner {
    pub(crate) fn new(key: Vec<u8>) -> ManifestSigner {
        ManifestSigner { key }
    }

    fn mac(&self) -> Hmac<Sha256> {
        Hmac::<Sha256>::new_from_slice(&self.key).expect("HMAC takes keys of any length")
    }

    /// The hex tag of `manifest`.
    pub(crate) fn sign(&self, manifest: &[u8]) -> String {
        let mut mac = self.mac();
        mac.update(manifest);
        hex::encode(mac.finalize().into_bytes())
    }

    /// Whether `tag` (hex) authenticates `manifest`, compared in constant time.
    pub(crate) fn verify(&self, manifest: &[u8], tag: &str) -> bool {
        let Some(tag) = decode_hex(tag.trim()) else { return false };
        let mut mac = self.mac();
        mac.update(manifest);
        mac.verify_slice(&tag).is_ok()
    }
}

fn decode_hex(s: &str) -> Option<Vec<u8>> {
    if !s.len().is_multiple_of(2) {
        return None;
    }
    (0..s.len()).step_by(2).map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok()).collect()
}
