//! The channels' signing keys: issued with a new channel
//! ([`create_channel`]) and, as the API checks them, looked up in the
//! store, opened with the master key and trusted for a short time
//! ([`KeyCache`]).

use std::collections::HashMap;
use std::sync::Mutex;
use std::time::{Duration, Instant};

use crate::auth::secrets::{generate_key_id, MasterKey, Secret};
use crate::domain::channel::{check_callback_url, Channel};
use crate::store::{Store, StoreError};

/// A channel key found in the store, its secret opened.
#[derive(Clone)]
pub struct ChannelKey {
    pub channel: Channel,
    pub secret: Secret,
    pub active: bool,
}

/// Why a key could not be looked up (an unknown key is `Ok(None)`).
#[derive(Debug, thiserror::Error)]
pub enum KeyLookupError {
    #[error(transparent)]
    Store(#[from] StoreError),
    /// The stored secret does not open with this process's master key.
    #[error("the secret of key {key_id} does not open with the master key")]
    Unsealable { key_id: String },
}

/// Keys looked up in the store, trusted for `ttl`; unknown keys are cached
/// as unknown for the same time. Bounded in size.
pub struct KeyCache {
    ttl: Duration,
    map: Mutex<HashMap<String, (Instant, Option<ChannelKey>)>>,
}

const KEY_CACHE_MAX: usize = 10_000;

impl KeyCache {
    pub fn new(ttl: Duration) -> KeyCache {
        KeyCache {
            ttl,
            map: Mutex::new(HashMap::new()),
        }
    }

    /// The key `key_id`, from the cache while fresh, else from the store.
    pub async fn get(
        &self,
        store: &dyn Store,
        master: &MasterKey,
        key_id: &str,
    ) -> Result<Option<ChannelKey>, KeyLookupError> {
        if !self.ttl.is_zero() {
            if let Some((at, v)) = self.map.lock().expect("key cache").get(key_id) {
                if at.elapsed() < self.ttl {
                    return Ok(v.clone());
                }
            }
        }
        let found = match store.find_key(key_id).await? {
            None => None,
            Some(k) => {
                let secret = master.open(&k.key_id, &k.sealed_secret).map_err(|e| {
                    tracing::error!(key_id, error = %e, "channel secret does not open with the master key");
                    KeyLookupError::Unsealable {
                        key_id: key_id.to_string(),
                    }
                })?;
                Some(ChannelKey {
                    channel: k.channel,
                    secret,
                    active: k.active,
                })
            }
        };
        if !self.ttl.is_zero() {
            let mut map = self.map.lock().expect("key cache");
            if map.len() >= KEY_CACHE_MAX {
                map.clear();
            }
            map.insert(key_id.to_string(), (Instant::now(), found.clone()));
        }
        Ok(found)
    }
}

/// Creates a channel and its first key (its secret sealed with the master
/// key); returns (key id, secret), the secret to hand to the payment app
/// once.
pub async fn create_channel(
    store: &dyn Store,
    key: &MasterKey,
    channel: &Channel,
) -> anyhow::Result<(String, Secret)> {
    check_callback_url(&channel.callback_url)?;
    let key_id = generate_key_id();
    let secret = Secret::generate();
    store
        .create_channel(channel, &key_id, &key.seal(&key_id, &secret))
        .await?;
    Ok((key_id, secret))
}
