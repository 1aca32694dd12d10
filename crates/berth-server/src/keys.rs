//! The instance's secret key, which seals the secrets stored in the database: from configuration
//! (`secret_key`, `previous_secret_keys`), or generated under `data_dir` on first start; and its
//! rotation (`berth admin rotate-secret-key`).
//!
//! Files under `data_dir` (mode 0600):
//! - `secret.key`: the current key;
//! - `secret.key.previous`: the key before the last rotation;
//! - `secret.key.next`: a rotation's new key, written before the database is re-sealed and renamed
//!   to `secret.key` after. Both extra files still open what they sealed, so a rotation that stops
//!   half-way leaves every secret readable, and the next start re-seals with `secret.key`.

use std::io::Write;
use std::path::{Path, PathBuf};

use anyhow::Context;
use berth_app::sealing::{self, Keyring, SecretKey};
use berth_store::Store;

use crate::config::Config;

const CURRENT: &str = "secret.key";
const PREVIOUS: &str = "secret.key.previous";
const NEXT: &str = "secret.key.next";

/// The keyring configuration names, generating `<data_dir>/secret.key` when no key is configured
/// and none was generated before.
pub fn keyring(config: &Config) -> anyhow::Result<Keyring> {
    let mut older = configured_older(config)?;
    let current = match &config.secret_key {
        Some(text) => SecretKey::parse(text).context("secret_key")?,
        None => {
            for name in [PREVIOUS, NEXT] {
                if let Some(k) = read_key(&config.data_dir.join(name))? {
                    older.push(k);
                }
            }
            match read_key(&config.data_dir.join(CURRENT))? {
                Some(k) => k,
                None => generate(&config.data_dir)?,
            }
        }
    };
    Ok(Keyring::new(current, older))
}

fn configured_older(config: &Config) -> anyhow::Result<Vec<SecretKey>> {
    config
        .previous_secret_keys
        .iter()
        .map(|t| SecretKey::parse(t).context("previous_secret_keys"))
        .collect()
}

/// Reads a key file, if it exists.
fn read_key(path: &Path) -> anyhow::Result<Option<SecretKey>> {
    match std::fs::read_to_string(path) {
        Ok(text) => {
            Ok(Some(SecretKey::parse(&text).with_context(|| {
                format!("reading the secret key {}", path.display())
            })?))
        }
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(e).with_context(|| format!("reading the secret key {}", path.display())),
    }
}

/// Writes a key file readable by its owner only; `create_new` refuses to replace one.
fn write_key(path: &Path, text: &str, create_new: bool) -> std::io::Result<()> {
    let mut options = std::fs::OpenOptions::new();
    options.write(true);
    if create_new {
        options.create_new(true);
    } else {
        options.create(true).truncate(true);
    }
    #[cfg(unix)]
    std::os::unix::fs::OpenOptionsExt::mode(&mut options, 0o600);
    let mut file = options.open(path)?;
    file.write_all(format!("{text}\n").as_bytes())?;
    file.sync_all()
}

/// Generates `<data_dir>/secret.key`; when another process won the race, reads its key.
fn generate(data_dir: &Path) -> anyhow::Result<SecretKey> {
    std::fs::create_dir_all(data_dir).with_context(|| format!("creating {}", data_dir.display()))?;
    let path = data_dir.join(CURRENT);
    let (key, text) = SecretKey::generate()?;
    match write_key(&path, &text, true) {
        Ok(()) => {
            tracing::info!(path = %path.display(), key = key.id(), "generated the secret key that seals stored secrets");
            Ok(key)
        }
        Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => {
            read_key(&path)?.with_context(|| format!("{} vanished", path.display()))
        }
        Err(e) => Err(e).with_context(|| format!("writing the secret key {}", path.display())),
    }
}

/// What [`rotate`] did.
#[derive(Debug)]
pub struct Rotated {
    /// The new key's id.
    pub key_id: String,
    /// Secrets re-sealed with it.
    pub resealed: usize,
    /// Where the new key was written, when Berth manages the key file.
    pub key_file: Option<PathBuf>,
}

/// Re-seals every stored secret with a new key: the one in `new_key_file`, or a generated one.
/// With a generated key file, the file is replaced; with `secret_key` in configuration, the
/// operator sets the new key there afterwards (and `new_key_file` is required).
pub async fn rotate(config: &Config, store: &Store, new_key_file: Option<&Path>) -> anyhow::Result<Rotated> {
    let (new, text) = match new_key_file {
        Some(path) => {
            let text = std::fs::read_to_string(path).with_context(|| format!("reading {}", path.display()))?;
            let text = text.trim().to_owned();
            let key = SecretKey::parse(&text).with_context(|| format!("the new key in {}", path.display()))?;
            (key, text)
        }
        None if config.secret_key.is_some() => anyhow::bail!(
            "secret_key is set in the configuration: write the new key (openssl rand -base64 32) to a file and pass \
             --new-key-file, then set secret_key to it"
        ),
        None => SecretKey::generate()?,
    };
    let key_id = new.id().to_owned();
    // Every key that opens something today still opens it during the re-seal.
    let ring = keyring(config)?.rotated_to(new);
    let managed = config.secret_key.is_none();
    if managed {
        // Written first: if the re-seal commits and we stop before the rename, the next start
        // still opens everything (and re-seals it with secret.key again).
        write_key(&config.data_dir.join(NEXT), &text, false).context("writing secret.key.next")?;
    }
    let done = sealing::reseal_all(store, &ring).await?;
    let key_file = if managed {
        let dir = &config.data_dir;
        if dir.join(CURRENT).exists() {
            std::fs::rename(dir.join(CURRENT), dir.join(PREVIOUS))
                .context("keeping the old key as secret.key.previous")?;
        }
        std::fs::rename(dir.join(NEXT), dir.join(CURRENT)).context("installing the new secret.key")?;
        Some(dir.join(CURRENT))
    } else {
        None
    };
    Ok(Rotated {
        key_id,
        resealed: done.changed,
        key_file,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn config(dir: &Path) -> Config {
        Config {
            data_dir: dir.to_path_buf(),
            ..Config::default()
        }
    }

    #[test]
    fn a_fresh_install_generates_its_key_once_readable_by_its_owner_only() {
        let dir = tempfile::tempdir().unwrap();
        let first = keyring(&config(dir.path())).unwrap();
        let again = keyring(&config(dir.path())).unwrap();
        assert_eq!(first.current_id(), again.current_id(), "the generated key is kept");
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = std::fs::metadata(dir.path().join(CURRENT))
                .unwrap()
                .permissions()
                .mode();
            assert_eq!(mode & 0o777, 0o600);
        }
        // A configured key wins over the file.
        let (key, text) = SecretKey::generate().unwrap();
        let configured = Config {
            secret_key: Some(text),
            ..config(dir.path())
        };
        assert_eq!(keyring(&configured).unwrap().current_id(), key.id());
        // A damaged key file stops start-up with its path, rather than making a new key.
        std::fs::write(dir.path().join(CURRENT), "garbage").unwrap();
        let e = format!("{:#}", keyring(&config(dir.path())).unwrap_err());
        assert!(e.contains("secret.key") && e.contains("base64"), "{e}");
    }
}
