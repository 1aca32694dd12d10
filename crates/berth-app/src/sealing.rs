//! Secrets at rest. Every secret the database holds (robot tokens, notification signing secrets,
//! build trigger secrets, the key that signs registry tokens) is sealed with AES-256-GCM under the
//! instance's secret key before it is written, and opened after it is read.
//!
//! - A sealed value reads `sealed:v1:<key id>:<base64 of nonce, ciphertext and tag>`; the key id
//!   says which key sealed it, so that a keyring of the current key and older ones opens values
//!   from before a rotation.
//! - What the value is (robot token, signing secret, …) is bound in as associated data: a sealed
//!   value copied into another column does not open.
//! - Values written before sealing existed are plain text; they open as they are, and
//!   [`reseal_all`] (run at start-up and by `berth admin rotate-secret-key`) seals them.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};
use base64::Engine;
use base64::engine::general_purpose::{STANDARD, URL_SAFE_NO_PAD};
use berth_store::Store;
use berth_store::secrets::{self, Sealed, SealedColumn};
use sha2::{Digest, Sha256};

use crate::{AppError, Result};

/// What starts every sealed value.
const PREFIX: &str = "sealed:v1:";
/// A secret key's length in bytes.
pub const KEY_LEN: usize = 32;
/// AES-GCM's tag length.
const TAG_LEN: usize = 16;

/// What a sealed value is; bound into its ciphertext as associated data.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Purpose {
    /// A robot account's token.
    RobotToken,
    /// A notification's signing secret (current or previous).
    NotificationSecret,
    /// A build trigger's webhook secret.
    TriggerSecret,
    /// An instance-wide secret.
    InstanceSecret,
    /// A mirror's upstream password.
    MirrorPassword,
}

impl Purpose {
    fn aad(self) -> &'static [u8] {
        match self {
            Purpose::RobotToken => b"berth robot token",
            Purpose::NotificationSecret => b"berth notification secret",
            Purpose::TriggerSecret => b"berth trigger secret",
            Purpose::InstanceSecret => b"berth instance secret",
            Purpose::MirrorPassword => b"berth mirror password",
        }
    }

    /// The purpose of the values of a column.
    pub fn of(column: SealedColumn) -> Purpose {
        match column {
            SealedColumn::RobotToken => Purpose::RobotToken,
            SealedColumn::NotificationSecret | SealedColumn::PreviousNotificationSecret => Purpose::NotificationSecret,
            SealedColumn::TriggerSecret => Purpose::TriggerSecret,
            SealedColumn::MirrorPassword => Purpose::MirrorPassword,
            SealedColumn::InstanceSecret => Purpose::InstanceSecret,
        }
    }
}

/// One 256-bit secret key and its id.
pub struct SecretKey {
    id: String,
    key: LessSafeKey,
}

impl std::fmt::Debug for SecretKey {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "SecretKey({})", self.id)
    }
}

impl SecretKey {
    /// A key from its 32 bytes.
    pub fn from_bytes(bytes: &[u8]) -> Result<SecretKey> {
        if bytes.len() != KEY_LEN {
            return Err(AppError::invalid(format!(
                "invalid secret_key: must be {KEY_LEN} bytes, base64-encoded (got {} bytes)",
                bytes.len()
            )));
        }
        let unbound = UnboundKey::new(&AES_256_GCM, bytes)
            .map_err(|_| AppError::Internal("the AES-256-GCM key was refused".into()))?;
        let digest = Sha256::new_with_prefix(b"berth secret key id\0")
            .chain_update(bytes)
            .finalize();
        Ok(SecretKey {
            id: hex::encode(&digest[..4]),
            key: LessSafeKey::new(unbound),
        })
    }

    /// A key from its text form: the base64 of 32 bytes (surrounding whitespace ignored).
    pub fn parse(text: &str) -> Result<SecretKey> {
        let bytes = STANDARD
            .decode(text.trim())
            .map_err(|e| AppError::invalid(format!("invalid secret_key: not base64 ({e})")))?;
        SecretKey::from_bytes(&bytes)
    }

    /// A new random key and its text form.
    pub fn generate() -> Result<(SecretKey, String)> {
        let mut bytes = [0u8; KEY_LEN];
        SystemRandom::new()
            .fill(&mut bytes)
            .map_err(|_| AppError::Internal("the system random generator failed".into()))?;
        Ok((SecretKey::from_bytes(&bytes)?, STANDARD.encode(bytes)))
    }

    /// Its id: 8 hex digits derived from the key, written into every value it seals.
    pub fn id(&self) -> &str {
        &self.id
    }
}

/// The key that seals, and older keys that still open what they sealed.
#[derive(Debug, Clone)]
pub struct Keyring {
    current: std::sync::Arc<SecretKey>,
    older: std::sync::Arc<Vec<std::sync::Arc<SecretKey>>>,
}

impl Keyring {
    /// A keyring sealing with `current`; `older` keys only open (keys with `current`'s id are
    /// dropped from them).
    pub fn new(current: SecretKey, older: Vec<SecretKey>) -> Keyring {
        Keyring::of(
            std::sync::Arc::new(current),
            older.into_iter().map(std::sync::Arc::new).collect(),
        )
    }

    fn of(current: std::sync::Arc<SecretKey>, older: Vec<std::sync::Arc<SecretKey>>) -> Keyring {
        let older = older.into_iter().filter(|k| k.id != current.id).collect();
        Keyring {
            current,
            older: std::sync::Arc::new(older),
        }
    }

    /// This keyring after a rotation to `new`: `new` seals, and every key of this one still opens.
    pub fn rotated_to(&self, new: SecretKey) -> Keyring {
        let mut older = vec![self.current.clone()];
        older.extend(self.older.iter().cloned());
        Keyring::of(std::sync::Arc::new(new), older)
    }

    /// A keyring with one random key, for tests and throwaway instances.
    pub fn ephemeral() -> Result<Keyring> {
        Ok(Keyring::new(SecretKey::generate()?.0, Vec::new()))
    }

    /// The id of the key that seals.
    pub fn current_id(&self) -> &str {
        self.current.id()
    }

    /// Seals `plain` as a value of kind `purpose`.
    pub fn seal(&self, purpose: Purpose, plain: &str) -> Result<Sealed> {
        let mut nonce = [0u8; NONCE_LEN];
        SystemRandom::new()
            .fill(&mut nonce)
            .map_err(|_| AppError::Internal("the system random generator failed".into()))?;
        let mut data = plain.as_bytes().to_vec();
        self.current
            .key
            .seal_in_place_append_tag(Nonce::assume_unique_for_key(nonce), Aad::from(purpose.aad()), &mut data)
            .map_err(|_| AppError::Internal("sealing a secret failed".into()))?;
        let mut packed = nonce.to_vec();
        packed.extend_from_slice(&data);
        Ok(Sealed::from_stored(format!(
            "{PREFIX}{}:{}",
            self.current.id,
            URL_SAFE_NO_PAD.encode(packed)
        )))
    }

    /// Opens a value of kind `purpose`: a sealed one with whichever key sealed it, a plain one
    /// (from before sealing) as it is.
    pub fn open(&self, purpose: Purpose, sealed: &Sealed) -> Result<String> {
        let Some((id, body)) = split(sealed) else {
            return Ok(sealed.as_stored().to_owned());
        };
        let key = std::iter::once(self.current.as_ref())
            .chain(self.older.iter().map(|k| k.as_ref()))
            .find(|k| k.id == id)
            .ok_or_else(|| {
                AppError::Internal(format!(
                    "a stored secret is sealed with key {id}, which this instance does not have (its key is {}): \
                     give every instance the same secret_key",
                    self.current.id
                ))
            })?;
        let corrupt = || AppError::Internal(format!("a stored secret sealed with key {id} does not open"));
        let mut packed = URL_SAFE_NO_PAD.decode(body).map_err(|_| corrupt())?;
        if packed.len() < NONCE_LEN + TAG_LEN {
            return Err(corrupt());
        }
        let mut data = packed.split_off(NONCE_LEN);
        let nonce = Nonce::try_assume_unique_for_key(&packed).map_err(|_| corrupt())?;
        let plain = key
            .key
            .open_in_place(nonce, Aad::from(purpose.aad()), &mut data)
            .map_err(|_| corrupt())?;
        String::from_utf8(plain.to_vec()).map_err(|_| corrupt())
    }

    /// Whether `sealed` is sealed with the current key (so re-sealing would change nothing).
    pub fn is_current(&self, sealed: &Sealed) -> bool {
        split(sealed).is_some_and(|(id, _)| id == self.current.id)
    }
}

/// A sealed value's key id and body; `None` for a plain value.
fn split(sealed: &Sealed) -> Option<(&str, &str)> {
    sealed.as_stored().strip_prefix(PREFIX)?.split_once(':')
}

/// What [`reseal_all`] did.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Resealed {
    /// Values looked at.
    pub values: usize,
    /// Values re-sealed with the current key (plain ones, or ones sealed with an older key).
    pub changed: usize,
}

/// Seals with the current key every stored secret that is plain or sealed with an older key, in
/// one transaction. Fails, changing nothing, when a value is sealed with a key the keyring lacks.
pub async fn reseal_all(store: &Store, keyring: &Keyring) -> Result<Resealed> {
    let mut tx = store.begin().await?;
    let mut done = Resealed::default();
    for column in SealedColumn::ALL {
        let purpose = Purpose::of(column);
        for (key, value) in secrets::sealed_values(&mut tx, column).await? {
            done.values += 1;
            if keyring.is_current(&value) {
                continue;
            }
            let plain = keyring.open(purpose, &value)?;
            secrets::replace_sealed(&mut tx, column, &key, &keyring.seal(purpose, &plain)?).await?;
            done.changed += 1;
        }
    }
    tx.commit().await?;
    Ok(done)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sealed_values_open_with_their_key_and_purpose_only() {
        let (old, old_text) = SecretKey::generate().unwrap();
        let ring = Keyring::new(SecretKey::parse(&old_text).unwrap(), Vec::new());
        let sealed = ring.seal(Purpose::RobotToken, "t0ken").unwrap();
        assert!(sealed.as_stored().starts_with(&format!("sealed:v1:{}:", old.id())));
        assert!(!sealed.as_stored().contains("t0ken"));
        assert_eq!(ring.open(Purpose::RobotToken, &sealed).unwrap(), "t0ken");
        // Random nonces: the same secret seals differently each time.
        assert_ne!(ring.seal(Purpose::RobotToken, "t0ken").unwrap(), sealed);
        // Another purpose, a changed byte, or an unknown key: refused, never garbage.
        assert!(ring.open(Purpose::TriggerSecret, &sealed).is_err());
        let mut tampered = sealed.as_stored().to_owned();
        let last = tampered.pop().unwrap();
        tampered.push(if last == 'A' { 'B' } else { 'A' });
        assert!(ring.open(Purpose::RobotToken, &Sealed::from_stored(tampered)).is_err());
        let other = Keyring::ephemeral().unwrap();
        let e = other.open(Purpose::RobotToken, &sealed).unwrap_err().to_string();
        assert!(e.contains(old.id()) && e.contains("secret_key"), "{e}");
        // After a rotation the old key still opens what it sealed, and the new one seals.
        let (new, _) = SecretKey::generate().unwrap();
        let new_id = new.id().to_owned();
        let rotated = ring.rotated_to(new);
        assert_eq!(rotated.open(Purpose::RobotToken, &sealed).unwrap(), "t0ken");
        assert!(!rotated.is_current(&sealed));
        assert!(
            rotated
                .seal(Purpose::RobotToken, "x")
                .unwrap()
                .as_stored()
                .contains(&new_id)
        );
        // Plain values from before sealing open as they are.
        let plain = Sealed::from_stored("whsec_legacy".into());
        assert_eq!(
            rotated.open(Purpose::NotificationSecret, &plain).unwrap(),
            "whsec_legacy"
        );
        assert!(!rotated.is_current(&plain));
    }

    #[test]
    fn keys_are_32_bytes_of_base64() {
        assert!(
            SecretKey::parse("not base64!")
                .unwrap_err()
                .to_string()
                .contains("secret_key")
        );
        let e = SecretKey::parse(&STANDARD.encode([1u8; 16])).unwrap_err().to_string();
        assert!(e.contains("32 bytes") && e.contains("got 16"), "{e}");
        let a = SecretKey::parse(&format!(" {}\n", STANDARD.encode([7u8; 32]))).unwrap();
        let b = SecretKey::from_bytes(&[7u8; 32]).unwrap();
        assert_eq!((a.id().len(), a.id()), (8, b.id()));
    }
}
