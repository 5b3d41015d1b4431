//! Channels: the payment apps that submit payments.

use super::ids::ChannelId;

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ChannelStatus {
    Active,
    Disabled,
}

impl ChannelStatus {
    pub fn as_str(&self) -> &'static str {
        match self {
            ChannelStatus::Active => "active",
            ChannelStatus::Disabled => "disabled",
        }
    }
    pub fn parse(s: &str) -> Option<ChannelStatus> {
        match s {
            "active" => Some(ChannelStatus::Active),
            "disabled" => Some(ChannelStatus::Disabled),
            _ => None,
        }
    }
}

#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Channel {
    pub id: ChannelId,
    pub name: String,
    pub callback_url: String,
    pub status: ChannelStatus,
    /// Requests per second this channel may send (token bucket, per process).
    pub rate_limit_rps: u32,
}

#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum CallbackUrlError {
    #[error("callback URL must start with http:// or https:// and be at most 2048 characters")]
    Invalid,
}

/// A callback URL is an absolute http(s) URL without spaces.
pub fn check_callback_url(url: &str) -> Result<(), CallbackUrlError> {
    let ok_scheme = url.starts_with("https://") || url.starts_with("http://");
    let host_part = url.split("://").nth(1).unwrap_or("");
    if !ok_scheme
        || url.len() > 2048
        || host_part.is_empty()
        || host_part.starts_with('/')
        || url.chars().any(|c| c.is_whitespace() || c.is_control())
    {
        return Err(CallbackUrlError::Invalid);
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn callback_urls() {
        assert!(check_callback_url("https://alipay.example/cb").is_ok());
        assert!(check_callback_url("http://127.0.0.1:9000/cb").is_ok());
        assert!(check_callback_url("ftp://x").is_err());
        assert!(check_callback_url("https://").is_err());
        assert!(check_callback_url("https://a b").is_err());
    }
}
