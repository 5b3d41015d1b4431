//! `billclear keys`: connectors' private keys at rest, sealed with the
//! master key; and what `serve` and `routes list` say about how each
//! connector is secured.

use std::path::PathBuf;

use anyhow::Context;
use biller_connectors::{SignatureScheme, Signer};
use clap::Subcommand;

use crate::auth::sealed_keys;
use crate::config::Config;

#[derive(Subcommand)]
pub enum KeysCommand {
    /// Seal a PEM private key (a signing key, or a TLS client key) with the
    /// master key, for a connector's private_key_file or client_key_file.
    Seal {
        /// The PEM private key (PKCS#8, PKCS#1 or SEC1).
        #[arg(long = "in")]
        input: PathBuf,
        /// The sealed file to write (mode 0600; it must not exist).
        #[arg(long)]
        out: PathBuf,
    },
    /// Generate a signing key pair: the private key sealed with the master
    /// key (<name>.key.sealed) and the public key to give the biller
    /// (<name>.pub.pem).
    Generate {
        /// rsa-sha256 (2048 bits) or sm2-sm3.
        #[arg(long, value_parser = SignatureScheme::parse)]
        scheme: SignatureScheme,
        /// The directory to write into.
        #[arg(long, default_value = ".")]
        dir: PathBuf,
        /// The files' name.
        #[arg(long, default_value = "billclear")]
        name: String,
        /// RSA modulus size in bits (2048 or more).
        #[arg(long, default_value_t = 2048)]
        bits: usize,
    },
}

pub fn run(config: &Config, cmd: KeysCommand) -> anyhow::Result<()> {
    let master = super::master_key(config)?;
    match cmd {
        KeysCommand::Seal { input, out } => {
            let pem =
                std::fs::read(&input).with_context(|| format!("reading {}", input.display()))?;
            let sealed = sealed_keys::seal(&master, &pem)
                .with_context(|| format!("{} cannot be sealed", input.display()))?;
            crate::auth::secrets::write_private(&out, &sealed)?;
            println!(
                "sealed {} into {}; keep the master key ({}) safe: the key cannot be read without it",
                input.display(),
                out.display(),
                config.security.master_key_file.display()
            );
            println!(
                "the plain file {} is no longer needed by billclear: remove it",
                input.display()
            );
        }
        KeysCommand::Generate {
            scheme,
            dir,
            name,
            bits,
        } => {
            let pair = match scheme {
                SignatureScheme::RsaSha256 => {
                    anyhow::ensure!(bits >= 2048, "RSA keys have 2048 bits or more");
                    biller_connectors::signature::rsa_key_pair(bits)
                }
                SignatureScheme::Sm2Sm3 => biller_connectors::signature::sm2_key_pair(),
                SignatureScheme::HmacSha256 => {
                    anyhow::bail!("hmac-sha256 uses a shared secret, not a key pair")
                }
            }
            .map_err(|e| anyhow::anyhow!(e))?;
            // The pair works before anything is written.
            let signer = match scheme {
                SignatureScheme::RsaSha256 => Signer::rsa(
                    pair.private_pem.as_bytes(),
                    &[pair.public_pem.clone().into_bytes()],
                ),
                _ => Signer::sm2(
                    pair.private_pem.as_bytes(),
                    &[pair.public_pem.clone().into_bytes()],
                    biller_connectors::signature::DEFAULT_SM2_SIGNER_ID,
                    biller_connectors::signature::DEFAULT_SM2_SIGNER_ID,
                ),
            }
            .map_err(|e| anyhow::anyhow!(e))?;
            anyhow::ensure!(
                signer.verify(b"check", &signer.sign(b"check")),
                "the new key pair does not verify its own signature"
            );
            std::fs::create_dir_all(&dir).with_context(|| format!("creating {}", dir.display()))?;
            let private = dir.join(format!("{name}.key.sealed"));
            let public = dir.join(format!("{name}.pub.pem"));
            anyhow::ensure!(!public.exists(), "{} exists already", public.display());
            crate::auth::secrets::write_private(
                &private,
                &sealed_keys::seal(&master, pair.private_pem.as_bytes())?,
            )?;
            std::fs::write(&public, &pair.public_pem)
                .with_context(|| format!("writing {}", public.display()))?;
            println!("{scheme} key pair:");
            println!(
                "  private (sealed)  {}   → signature.private_key_file",
                private.display()
            );
            println!(
                "  public            {}   → give it to the biller",
                public.display()
            );
        }
    }
    Ok(())
}

/// One line per configured connector: its transport and signature scheme.
pub fn connector_security(config: &Config) -> Vec<String> {
    config
        .connectors
        .iter()
        .filter(|(_, c)| c.kind.is_online())
        .map(|(id, c)| {
            let transport = if c.is_plaintext() {
                "PLAINTEXT"
            } else if c.tls.client_cert_file.is_some() {
                "TLS, client certificate"
            } else {
                "TLS"
            };
            let pinned = if c.tls.pin_sha256.is_empty() {
                ""
            } else {
                ", server key pinned"
            };
            format!(
                "{id:<16} {:<10} {transport}{pinned}; signs with {}",
                c.kind, c.signature.scheme
            )
        })
        .collect()
}

/// Logs what an operator must know at start.
pub fn warn_at_start(config: &Config) {
    for w in crate::dispatch::connectors::security_warnings(&config.connectors, chrono::Utc::now())
    {
        tracing::warn!("{w}");
    }
}
