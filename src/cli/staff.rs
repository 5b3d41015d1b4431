//! `billclear staff`: finance staff users, their roles and bearer tokens.

use anyhow::Context;
use clap::Subcommand;

use crate::auth::staff_token::StaffToken;
use crate::domain::staff::{StaffRole, StaffUser};
use crate::store::{StaffStore, StoreError};

#[derive(Subcommand)]
pub enum StaffCommand {
    /// Add a staff user; prints its bearer token ONCE.
    ///
    /// Roles: viewer (read), operator (read, work reconciliation breaks,
    /// propose resolutions), approver (an operator who may also approve
    /// money-moving resolutions proposed by someone else).
    Add {
        /// Login id: 1-64 characters of a-z, 0-9, '.', '_' or '-'. Never
        /// reused, even after the user is disabled.
        #[arg(long)]
        id: String,
        /// Display name.
        #[arg(long)]
        name: String,
        /// viewer, operator or approver.
        #[arg(long, value_parser = parse_role)]
        role: StaffRole,
    },
    /// List staff users with their role and status (never tokens).
    List,
    /// Disable a staff user: its token is refused from the next request.
    /// Users are never deleted, so that their actions stay attributable.
    Disable { id: String },
    /// Issue a new token for a user (lost or leaked token); the old one
    /// stops working at once. Prints the new token ONCE.
    Rotate { id: String },
    /// Print a one-time sign-in link to the finance console for a user
    /// (used once, within `console.sign_in_link_ttl_s`, and only while the
    /// user's token is unchanged).
    SignInLink {
        id: String,
        /// Where people reach the console (default: http://<http.listen>).
        #[arg(long)]
        base_url: Option<String>,
    },
}

fn parse_role(s: &str) -> Result<StaffRole, String> {
    s.parse::<StaffRole>().map_err(|e| e.to_string())
}

/// Adds a staff user with a new token; returns the user and the token
/// (the only time the token exists outside its holder's hands).
pub async fn add_staff(
    store: &dyn StaffStore,
    id: &str,
    name: &str,
    role: StaffRole,
) -> anyhow::Result<(StaffUser, StaffToken)> {
    let user = StaffUser::new(id, name, role)?;
    let token = StaffToken::generate();
    store
        .add_staff(&user, &token.hash())
        .await
        .map_err(|e| match e {
            StoreError::Conflict(_) => {
                anyhow::anyhow!("staff user {id} already exists (use `billclear staff rotate {id}` for a new token)")
            }
            other => anyhow::Error::new(other).context(format!("adding staff user {id}")),
        })?;
    Ok((user, token))
}

/// Gives a user a new token; the old one stops working at once.
pub async fn rotate_staff(store: &dyn StaffStore, id: &str) -> anyhow::Result<StaffToken> {
    let token = StaffToken::generate();
    store
        .rotate_staff_token(id, &token.hash())
        .await
        .with_context(|| format!("rotating the token of staff user {id}"))?;
    Ok(token)
}

fn print_token(user: &str, token: &StaffToken) {
    println!("staff user: {user}");
    println!("token:      {}", token.expose_text());
    println!("WARNING: the token is shown only this once and only its hash is stored; hand it to its holder over a secure path.");
    println!("Send it as `Authorization: Bearer <token>` to the staff endpoints (/v1/staff/...).");
}

/// A one-time sign-in link for `id` under `base_url`.
pub async fn sign_in_link(
    store: &dyn crate::store::Store,
    config: &crate::config::Config,
    id: &str,
    base_url: &str,
) -> anyhow::Result<String> {
    let code = crate::console::session::make_link(
        store,
        id,
        std::time::Duration::from_secs(config.console.sign_in_link_ttl_s),
    )
    .await
    .map_err(|e| match e {
        StoreError::NotFound(_) => anyhow::anyhow!("no enabled staff user {id}"),
        other => anyhow::Error::new(other).context(format!("making a sign-in link for {id}")),
    })?;
    Ok(format!(
        "{}/console/sign-in/link?code={code}",
        base_url.trim_end_matches('/')
    ))
}

pub async fn run(
    store: &dyn crate::store::Store,
    config: &crate::config::Config,
    cmd: StaffCommand,
) -> anyhow::Result<()> {
    match cmd {
        StaffCommand::Add { id, name, role } => {
            let (user, token) = add_staff(store, &id, &name, role).await?;
            print_token(&format!("{} ({})", user.id, user.role), &token);
        }
        StaffCommand::List => {
            let list = store.list_staff().await?;
            println!(
                "{:<24} {:<9} {:<19} {:<20} {:<20} NAME",
                "ID", "ROLE", "STATUS", "CREATED", "TOKEN ISSUED"
            );
            let fmt = |t: chrono::DateTime<chrono::Utc>| t.format("%Y-%m-%d %H:%M UTC").to_string();
            for r in list {
                let status = match r.disabled_at {
                    Some(at) => format!("disabled {}", at.format("%Y-%m-%d")),
                    None => "active".to_string(),
                };
                println!(
                    "{:<24} {:<9} {:<19} {:<20} {:<20} {}",
                    r.user.id,
                    r.user.role.as_str(),
                    status,
                    fmt(r.created_at),
                    fmt(r.token_issued_at),
                    r.user.name
                );
            }
        }
        StaffCommand::Disable { id } => {
            store
                .disable_staff(&id)
                .await
                .with_context(|| format!("disabling staff user {id}"))?;
            println!("staff user {id} disabled: its token is refused from the next request");
        }
        StaffCommand::Rotate { id } => {
            let token = rotate_staff(store, &id).await?;
            print_token(&id, &token);
            println!("The old token of {id} no longer works; their console sessions have ended.");
        }
        StaffCommand::SignInLink { id, base_url } => {
            let base = base_url.unwrap_or_else(|| format!("http://{}", config.http.listen));
            let link = sign_in_link(store, config, &id, &base).await?;
            println!("{link}");
            println!(
                "Open it once within {} minutes; it signs {id} in to the console.",
                config.console.sign_in_link_ttl_s / 60
            );
        }
    }
    Ok(())
}
