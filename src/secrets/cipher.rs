//! Sealing and opening secret values: AES-256-GCM (aws-lc-rs) with a fresh random 96-bit
//! nonce per value, and the secret's name as associated data, so a ciphertext copied onto
//! another name does not open. Opening with the wrong key or altered bytes fails; it never
//! yields garbage.

use aws_lc_rs::aead::{AES_256_GCM, Aad, LessSafeKey, NONCE_LEN, Nonce, UnboundKey};
use aws_lc_rs::rand::{SecureRandom, SystemRandom};

/// Bytes of an AES-256 key.
pub const KEY_LEN: usize = 32;

/// What the associated data starts with: a version, so a later format never opens as this one.
const AAD_PREFIX: &[u8] = b"windlass-secret-v1\0";

/// An AES-256-GCM key, ready to seal and open.
pub struct Cipher {
    key: LessSafeKey,
}

/// Sealing or opening failed (no detail exists, by design of AEAD).
#[derive(Debug)]
pub struct Unsealable;

impl Cipher {
    pub fn new(key: &[u8; KEY_LEN]) -> Cipher {
        let unbound = UnboundKey::new(&AES_256_GCM, key).expect("32 bytes is an AES-256 key");
        Cipher {
            key: LessSafeKey::new(unbound),
        }
    }

    /// `(nonce, ciphertext with its tag)` of `plain`, bound to `name`.
    pub fn seal(&self, name: &str, plain: &[u8]) -> Result<(Vec<u8>, Vec<u8>), Unsealable> {
        let mut nonce = [0u8; NONCE_LEN];
        random(&mut nonce)?;
        let mut sealed = plain.to_vec();
        self.key
            .seal_in_place_append_tag(
                Nonce::assume_unique_for_key(nonce),
                Aad::from(aad(name)),
                &mut sealed,
            )
            .map_err(|_| Unsealable)?;
        Ok((nonce.to_vec(), sealed))
    }

    /// The plain bytes sealed for `name`; fails on another key, another name or altered bytes.
    pub fn open(&self, name: &str, nonce: &[u8], sealed: &[u8]) -> Result<Vec<u8>, Unsealable> {
        let nonce = Nonce::try_assume_unique_for_key(nonce).map_err(|_| Unsealable)?;
        let mut buf = sealed.to_vec();
        let plain = self
            .key
            .open_in_place(nonce, Aad::from(aad(name)), &mut buf)
            .map_err(|_| Unsealable)?;
        Ok(plain.to_vec())
    }
}

fn aad(name: &str) -> Vec<u8> {
    [AAD_PREFIX, name.as_bytes()].concat()
}

/// Fill `buf` from the system's CSPRNG.
pub fn random(buf: &mut [u8]) -> Result<(), Unsealable> {
    SystemRandom::new().fill(buf).map_err(|_| Unsealable)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn opens_only_with_its_key_and_name() {
        let a = Cipher::new(&[7; KEY_LEN]);
        let b = Cipher::new(&[8; KEY_LEN]);
        let (nonce, sealed) = a.seal("db", b"hunter2").unwrap();
        assert!(!sealed.windows(7).any(|w| w == b"hunter2"));
        assert_eq!(a.open("db", &nonce, &sealed).unwrap(), b"hunter2");
        assert!(b.open("db", &nonce, &sealed).is_err());
        assert!(a.open("other", &nonce, &sealed).is_err());
        let mut altered = sealed.clone();
        altered[0] ^= 1;
        assert!(a.open("db", &nonce, &altered).is_err());
        let (nonce2, _) = a.seal("db", b"hunter2").unwrap();
        assert_ne!(nonce, nonce2, "a nonce is never reused");
    }
}
