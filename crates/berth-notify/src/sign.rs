//! Standard Webhooks signatures (<https://www.standardwebhooks.com>): every HTTP delivery carries
//! `webhook-id` (the delivery id, stable across retries), `webhook-timestamp` (unix seconds of the
//! attempt) and `webhook-signature`, a space-separated list of `v1,<base64 HMAC-SHA256>` over
//! `"<id>.<timestamp>.<body>"`, one per active secret (two while a rotated secret is in its grace
//! period). Secrets are `whsec_` followed by the base64 of the key bytes.

use base64::Engine;
use base64::engine::general_purpose::STANDARD;
use hmac::{Hmac, KeyInit, Mac};
use sha2_resumable::Sha256;

/// The prefix of every signing secret.
pub const SECRET_PREFIX: &str = "whsec_";

/// The bytes of the key a secret names.
fn key_of(secret: &str) -> Result<Vec<u8>, String> {
    let encoded = secret.strip_prefix(SECRET_PREFIX).unwrap_or(secret);
    STANDARD
        .decode(encoded)
        .map_err(|e| format!("signing secret is not base64 after {SECRET_PREFIX}: {e}"))
}

/// A secret for `key` (at least 24 random bytes from the caller's generator).
pub fn secret_of(key: &[u8]) -> String {
    format!("{SECRET_PREFIX}{}", STANDARD.encode(key))
}

/// One `v1,<signature>` for `secret`.
pub fn signature(secret: &str, id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let key = key_of(secret)?;
    let mut mac = Hmac::<Sha256>::new_from_slice(&key).map_err(|e| format!("signing key: {e}"))?;
    mac.update(id.as_bytes());
    mac.update(b".");
    mac.update(timestamp.to_string().as_bytes());
    mac.update(b".");
    mac.update(body);
    Ok(format!("v1,{}", STANDARD.encode(mac.finalize().into_bytes())))
}

/// The `webhook-signature` value: one signature per secret, space-separated.
pub fn signature_header(secrets: &[String], id: &str, timestamp: i64, body: &[u8]) -> Result<String, String> {
    let sigs = secrets
        .iter()
        .map(|s| signature(s, id, timestamp, body))
        .collect::<Result<Vec<_>, _>>()?;
    Ok(sigs.join(" "))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn matches_the_standard_webhooks_reference_vector() {
        // The example of the Standard Webhooks specification's reference libraries.
        let secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw";
        let id = "msg_p5jXN8AQM9LWM0D4loKWxJek";
        let body = br#"{"test": 2432232314}"#;
        assert_eq!(
            signature(secret, id, 1_614_265_330, body).unwrap(),
            "v1,g0hM9SsE+OTPJTGt/tmIKtSyZlE3uFJELVlNIOLJ1OE="
        );
    }

    #[test]
    fn several_secrets_sign_side_by_side() {
        let a = secret_of(&[1; 24]);
        let b = secret_of(&[2; 24]);
        let h = signature_header(&[a.clone(), b.clone()], "id", 7, b"{}").unwrap();
        let parts: Vec<&str> = h.split(' ').collect();
        assert_eq!(parts.len(), 2);
        assert_eq!(parts[0], signature(&a, "id", 7, b"{}").unwrap());
        assert_ne!(parts[0], parts[1]);
        assert!(
            signature("whsec_***", "id", 7, b"{}")
                .unwrap_err()
                .contains("not base64")
        );
    }
}
