//! Client authentication against the `authorization {}` block.

use jetway_protocols::nats::ConnectOptions;

use crate::config::Authorization;

/// How clients must authenticate.
#[derive(Debug, Clone, Default)]
pub struct Auth {
    user: Option<(String, String)>,
    token: Option<String>,
}

impl Auth {
    pub fn from_config(cfg: &Authorization) -> Self {
        Auth {
            user: cfg.user.clone().map(|u| (u, cfg.password.clone().unwrap_or_default())),
            token: cfg.token.clone(),
        }
    }

    /// Whether clients must send credentials in CONNECT.
    pub fn required(&self) -> bool {
        self.user.is_some() || self.token.is_some()
    }

    /// Checks the credentials of a CONNECT. Comparisons are constant-time.
    pub fn check(&self, opts: &ConnectOptions) -> bool {
        if !self.required() {
            return true;
        }
        if let Some(token) = &self.token {
            if opts.auth_token.as_deref().is_some_and(|t| constant_time_eq(t, token)) {
                return true;
            }
        }
        if let Some((user, pass)) = &self.user {
            let user_ok = opts.user.as_deref().is_some_and(|u| constant_time_eq(u, user));
            let pass_ok = opts.pass.as_deref().is_some_and(|p| constant_time_eq(p, pass));
            if user_ok & pass_ok {
                return true;
            }
        }
        false
    }
}

fn constant_time_eq(a: &str, b: &str) -> bool {
    let (a, b) = (a.as_bytes(), b.as_bytes());
    if a.len() != b.len() {
        return false;
    }
    a.iter().zip(b).fold(0u8, |acc, (x, y)| acc | (x ^ y)) == 0
}

#[cfg(test)]
mod tests {
    use super::*;

    fn opts(user: Option<&str>, pass: Option<&str>, token: Option<&str>) -> ConnectOptions {
        ConnectOptions {
            user: user.map(Into::into),
            pass: pass.map(Into::into),
            auth_token: token.map(Into::into),
            ..ConnectOptions::default()
        }
    }

    #[test]
    fn user_password_and_token() {
        let auth = Auth::from_config(&Authorization {
            user: Some("u".into()),
            password: Some("p".into()),
            token: None,
            ..Authorization::default()
        });
        assert!(auth.required());
        assert!(auth.check(&opts(Some("u"), Some("p"), None)));
        assert!(!auth.check(&opts(Some("u"), Some("x"), None)));
        assert!(!auth.check(&opts(None, None, None)));
        let auth = Auth::from_config(&Authorization { token: Some("t".into()), ..Authorization::default() });
        assert!(auth.check(&opts(None, None, Some("t"))));
        assert!(!auth.check(&opts(None, None, Some("tt"))));
        assert!(!Auth::default().required());
    }
}
