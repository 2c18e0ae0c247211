//! Browser origin checks (`same_origin`, `allowed_origins`), as nats-server applies them.
//!
//! A request without an `Origin` header is always accepted: only browsers send one, and a
//! non-browser client could put anything there anyway (RFC 6455 §1.6). Origins compare by
//! scheme, lower-cased host and port, with the scheme's default port when none is written.

/// `scheme://host[:port]`, normalised for comparison.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Origin {
    pub scheme: String,
    pub host: String,
    pub port: u16,
}

/// Why an origin (configured or sent by a browser) is not usable.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum OriginError {
    #[error("expected an absolute URL like https://host[:port]")]
    NotAUrl,
    #[error("allowed origins must use the http or https scheme")]
    Scheme,
    #[error("host is required")]
    NoHost,
    #[error("invalid port {0:?}")]
    Port(String),
    #[error("not same origin")]
    NotSameOrigin,
    #[error("not in the allowed list")]
    NotAllowed,
}

impl Origin {
    /// Parses an `allowed_origins` entry: an absolute http or https URL with a host.
    pub fn parse(text: &str) -> Result<Origin, OriginError> {
        let origin = Self::parse_any(text)?;
        if origin.scheme != "http" && origin.scheme != "https" {
            return Err(OriginError::Scheme);
        }
        Ok(origin)
    }

    /// Parses an `Origin` header value (any scheme; a path, if present, is ignored).
    fn parse_any(text: &str) -> Result<Origin, OriginError> {
        let (scheme, rest) = text.split_once("://").ok_or(OriginError::NotAUrl)?;
        if scheme.is_empty() || !scheme.chars().all(|c| c.is_ascii_alphanumeric() || "+-.".contains(c)) {
            return Err(OriginError::NotAUrl);
        }
        let scheme = scheme.to_ascii_lowercase();
        let authority = rest.split(['/', '?', '#']).next().unwrap_or_default();
        let (host, port) = split_host_port(authority, scheme == "https")?;
        Ok(Origin { scheme, host, port })
    }
}

/// `host[:port]` or `[v6]:port`, with the default port of the scheme when none is given.
fn split_host_port(authority: &str, tls: bool) -> Result<(String, u16), OriginError> {
    let default_port = if tls { 443 } else { 80 };
    let (host, port) = if let Some(bracketed) = authority.strip_prefix('[') {
        let (host, after) = bracketed.split_once(']').ok_or(OriginError::NotAUrl)?;
        match after {
            "" => (host, None),
            _ => (host, Some(after.strip_prefix(':').ok_or(OriginError::NotAUrl)?)),
        }
    } else {
        match authority.rsplit_once(':') {
            Some((host, port)) => (host, Some(port)),
            None => (authority, None),
        }
    };
    if host.is_empty() {
        return Err(OriginError::NoHost);
    }
    let port = match port {
        None => default_port,
        Some(p) => p.parse::<u16>().map_err(|_| OriginError::Port(p.to_string()))?,
    };
    Ok((host.to_ascii_lowercase(), port))
}

/// The listener's origin rules.
#[derive(Debug, Clone, Default)]
pub struct OriginPolicy {
    same_origin: bool,
    allowed: Vec<Origin>,
}

impl OriginPolicy {
    pub fn new(same_origin: bool, allowed: &[String]) -> Result<Self, OriginError> {
        let allowed = allowed.iter().map(|a| Origin::parse(a)).collect::<Result<_, _>>()?;
        Ok(OriginPolicy { same_origin, allowed })
    }

    /// Checks a request's `Origin` against the rules. `host` is the request's `Host` header
    /// and `tls` whether the connection is encrypted (which decides this listener's own
    /// scheme and default port).
    pub fn check(&self, origin: Option<&str>, host: &str, tls: bool) -> Result<(), OriginError> {
        if !self.same_origin && self.allowed.is_empty() {
            return Ok(());
        }
        let Some(origin) = origin.filter(|o| !o.is_empty()) else {
            return Ok(());
        };
        let origin = Origin::parse_any(origin)?;
        if self.same_origin {
            let (own_host, own_port) = split_host_port(host, tls)?;
            let own_scheme = if tls { "https" } else { "http" };
            if origin.host != own_host || origin.port != own_port || origin.scheme != own_scheme {
                return Err(OriginError::NotSameOrigin);
            }
        }
        if !self.allowed.is_empty() && !self.allowed.contains(&origin) {
            return Err(OriginError::NotAllowed);
        }
        Ok(())
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn policy(same: bool, allowed: &[&str]) -> OriginPolicy {
        let allowed: Vec<String> = allowed.iter().map(|s| s.to_string()).collect();
        OriginPolicy::new(same, &allowed).unwrap_or_else(|e| panic!("{e}"))
    }

    #[test]
    fn configured_origins_need_an_http_scheme_and_a_host() {
        assert_eq!(
            Origin::parse("https://Example.com"),
            Ok(Origin { scheme: "https".into(), host: "example.com".into(), port: 443 })
        );
        assert_eq!(
            Origin::parse("http://[::1]:8080/path"),
            Ok(Origin { scheme: "http".into(), host: "::1".into(), port: 8080 })
        );
        assert_eq!(Origin::parse("ftp://example.com"), Err(OriginError::Scheme));
        assert_eq!(Origin::parse("example.com"), Err(OriginError::NotAUrl));
        assert_eq!(Origin::parse("http://"), Err(OriginError::NoHost));
        assert_eq!(Origin::parse("http://a:99999"), Err(OriginError::Port("99999".into())));
    }

    #[test]
    fn no_rules_or_no_origin_header_accepts() {
        assert_eq!(policy(false, &[]).check(Some("http://evil.example"), "localhost:8080", false), Ok(()));
        assert_eq!(policy(true, &["http://a.example"]).check(None, "localhost:8080", false), Ok(()));
    }

    #[test]
    fn same_origin_compares_scheme_host_and_port_with_the_listener() {
        let p = policy(true, &[]);
        assert_eq!(p.check(Some("http://localhost:8080"), "localhost:8080", false), Ok(()));
        assert_eq!(p.check(Some("https://localhost"), "LOCALHOST:443", true), Ok(()));
        assert_eq!(
            p.check(Some("https://localhost:8080"), "localhost:8080", false),
            Err(OriginError::NotSameOrigin)
        );
        assert_eq!(
            p.check(Some("http://other:8080"), "localhost:8080", false),
            Err(OriginError::NotSameOrigin)
        );
        assert_eq!(p.check(Some("null"), "localhost:8080", false), Err(OriginError::NotAUrl));
    }

    #[test]
    fn allowed_list_needs_an_exact_scheme_host_and_port() {
        let p = policy(false, &["https://app.example", "http://dev.example:3000"]);
        assert_eq!(p.check(Some("https://app.example:443"), "x", false), Ok(()));
        assert_eq!(p.check(Some("http://dev.example:3000"), "x", false), Ok(()));
        assert_eq!(p.check(Some("http://app.example"), "x", false), Err(OriginError::NotAllowed));
        assert_eq!(p.check(Some("http://dev.example"), "x", false), Err(OriginError::NotAllowed));
    }
}
