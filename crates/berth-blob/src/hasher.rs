//! The digest of an upload in progress, whose state can be saved after each chunk and resumed
//! later, possibly by another instance.

use berth_core::{Digest, DigestAlgorithm};
use sha2_resumable::digest::common::hazmat::SerializableState;
use sha2_resumable::{Digest as _, Sha256, Sha512};

use crate::BlobError;

/// A running SHA-256 or SHA-512.
#[derive(Clone)]
pub enum UploadHasher {
    /// SHA-256.
    Sha256(Sha256),
    /// SHA-512.
    Sha512(Sha512),
}

impl UploadHasher {
    /// A fresh hasher.
    pub fn new(algo: DigestAlgorithm) -> Self {
        match algo {
            DigestAlgorithm::Sha256 => UploadHasher::Sha256(Sha256::new()),
            DigestAlgorithm::Sha512 => UploadHasher::Sha512(Sha512::new()),
        }
    }

    /// The algorithm.
    pub fn algorithm(&self) -> DigestAlgorithm {
        match self {
            UploadHasher::Sha256(_) => DigestAlgorithm::Sha256,
            UploadHasher::Sha512(_) => DigestAlgorithm::Sha512,
        }
    }

    /// Feeds bytes.
    pub fn update(&mut self, data: &[u8]) {
        match self {
            UploadHasher::Sha256(h) => h.update(data),
            UploadHasher::Sha512(h) => h.update(data),
        }
    }

    /// The state to store: one algorithm byte, then the hasher's serialized state.
    pub fn save(&self) -> Vec<u8> {
        let (tag, state) = match self {
            UploadHasher::Sha256(h) => (0u8, h.serialize().to_vec()),
            UploadHasher::Sha512(h) => (1u8, h.serialize().to_vec()),
        };
        let mut out = Vec::with_capacity(state.len() + 1);
        out.push(tag);
        out.extend_from_slice(&state);
        out
    }

    /// Restores a state produced by [`UploadHasher::save`].
    pub fn restore(saved: &[u8]) -> Result<Self, BlobError> {
        let bad = || BlobError::BadState(format!("{} bytes of hash state", saved.len()));
        let (tag, state) = saved.split_first().ok_or_else(bad)?;
        match tag {
            0 => Ok(UploadHasher::Sha256(
                Sha256::deserialize(state.try_into().map_err(|_| bad())?).map_err(|_| bad())?,
            )),
            1 => Ok(UploadHasher::Sha512(
                Sha512::deserialize(state.try_into().map_err(|_| bad())?).map_err(|_| bad())?,
            )),
            _ => Err(bad()),
        }
    }

    /// The digest of everything fed so far.
    pub fn finish(self) -> Digest {
        match self {
            UploadHasher::Sha256(h) => Digest::from_bytes(DigestAlgorithm::Sha256, &h.finalize()),
            UploadHasher::Sha512(h) => Digest::from_bytes(DigestAlgorithm::Sha512, &h.finalize()),
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn state_survives_save_and_restore() {
        for algo in [DigestAlgorithm::Sha256, DigestAlgorithm::Sha512] {
            let mut whole = UploadHasher::new(algo);
            whole.update(b"hello world");
            let mut first = UploadHasher::new(algo);
            first.update(b"hello ");
            let mut resumed = UploadHasher::restore(&first.save()).unwrap();
            resumed.update(b"world");
            assert_eq!(resumed.finish(), whole.finish());
        }
        let mut h = UploadHasher::new(DigestAlgorithm::Sha256);
        h.update(b"hello world");
        assert_eq!(
            h.finish().hex(),
            "b94d27b9934d3e08a52e52d7da7dabfac484efe37a5380ee9088f7ace2efcde9"
        );
        assert!(UploadHasher::restore(&[]).is_err());
        assert!(UploadHasher::restore(&[0, 1, 2]).is_err());
        assert!(UploadHasher::restore(&[9; 105]).is_err());
    }
}
