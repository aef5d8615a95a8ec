//! Password rules applied before hashing.

/// Why a new password was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum PasswordError {
    /// Empty, or shorter than the configured minimum.
    #[error("Password should be at least {0} characters")]
    TooShort(usize),
    /// Longer than the hasher accepts (bcrypt's 72 bytes, or our 1 KiB cap against abuse).
    #[error("Password should be at most {0} bytes")]
    TooLong(usize),
}

/// Largest password accepted at all; hashing a megabyte-long password is a denial of service.
pub const MAX_PASSWORD_BYTES: usize = 1024;
/// bcrypt ignores (upstream: refuses) everything past 72 bytes.
pub const BCRYPT_MAX_BYTES: usize = 72;

/// The password policy of an instance.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct PasswordPolicy {
    /// Minimum length in characters (upstream: 1, i.e. non-empty).
    pub min_length: usize,
    /// Maximum length in bytes.
    pub max_bytes: usize,
}

impl Default for PasswordPolicy {
    fn default() -> Self {
        Self { min_length: 1, max_bytes: MAX_PASSWORD_BYTES }
    }
}

impl PasswordPolicy {
    /// Checks a new password.
    ///
    /// # Errors
    /// [`PasswordError`] naming the rule that failed.
    pub fn check(&self, password: &str) -> Result<(), PasswordError> {
        let min = self.min_length.max(1);
        if password.chars().count() < min {
            return Err(PasswordError::TooShort(min));
        }
        if password.len() > self.max_bytes {
            return Err(PasswordError::TooLong(self.max_bytes));
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn empty_is_too_short_and_limits_apply() {
        let p = PasswordPolicy::default();
        assert_eq!(p.check(""), Err(PasswordError::TooShort(1)));
        assert!(p.check("x").is_ok());
        assert_eq!(p.check(&"x".repeat(1025)), Err(PasswordError::TooLong(1024)));
        let strict = PasswordPolicy { min_length: 8, max_bytes: BCRYPT_MAX_BYTES };
        assert_eq!(strict.check("seven77"), Err(PasswordError::TooShort(8)));
        assert_eq!(strict.check(&"y".repeat(73)), Err(PasswordError::TooLong(72)));
        assert!(strict.check("éééééééé").is_ok());
    }
}
