//! Where an HTTP counterpart listens: `http://host:port[/prefix]`, parsed
//! once when its connector is built.

#[derive(Debug, Clone, PartialEq, Eq)]
pub(crate) struct BaseUrl {
    pub(crate) authority: String,
    /// A plain path without its trailing slash ("" when none).
    pub(crate) prefix: String,
}

impl BaseUrl {
    /// Parses `url`, refusing in the prefix any of `?`, `#`, a space, and
    /// `also_forbidden`.
    pub(crate) fn parse(url: &str, also_forbidden: &[char]) -> Result<BaseUrl, String> {
        let rest = url
            .strip_prefix("http://")
            .ok_or_else(|| format!("base_url {url:?} must start with http://"))?;
        let (authority, prefix) = match rest.find('/') {
            Some(i) => (&rest[..i], rest[i..].trim_end_matches('/')),
            None => (rest, ""),
        };
        let (host, port) = authority
            .rsplit_once(':')
            .ok_or_else(|| format!("base_url {url:?} must name a port (http://host:port)"))?;
        if host.is_empty() || port.parse::<u16>().map_or(true, |p| p == 0) {
            return Err(format!("base_url {url:?}: bad host or port"));
        }
        if prefix.contains(['?', '#', ' ']) || prefix.contains(also_forbidden) {
            return Err(format!("base_url {url:?}: the prefix must be a plain path"));
        }
        Ok(BaseUrl {
            authority: authority.to_string(),
            prefix: prefix.to_string(),
        })
    }
}
