//! The `gotrue` command line: `serve` (default), `multi`, `migrate`, `admin`, `version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Args, Parser, Subcommand};
use gotrue::app::cli::CreateUser;
use gotrue::app::config::{Config, Env, InstanceConfig};
use gotrue::app::{telemetry, wiring, AuthError};
use secrecy::SecretString;
use uuid::Uuid;

/// A GoTrue-compatible user registration and authentication API server.
#[derive(Parser)]
#[command(name = "gotrue", version = None, about)]
struct Cli {
    /// The .env file to read (default: ./.env when present). The environment wins over it.
    #[arg(short = 'c', long = "config", global = true, value_name = "FILE")]
    config: Option<PathBuf>,
    #[command(subcommand)]
    command: Option<Command>,
}

#[derive(Subcommand)]
enum Command {
    /// Serve the API (the default). With no database configured, uses ./gotrue.db (SQLite).
    Serve,
    /// Serve many sites from one process (multi-instance mode): instances live in the
    /// database, each request names its instance in the operator's signed `x-nf-sign` header.
    Multi,
    /// Create or upgrade the database schema (idempotent; upgrades an upstream GoTrue database in place).
    Migrate,
    /// Print the git commit this binary was built from.
    Version,
    /// Manage users directly in the database (no server, no admin token needed).
    Admin {
        #[command(subcommand)]
        command: AdminCommand,
    },
}

/// Where a user lives: `-i` instance (default: single-instance mode's) and `-a` audience.
#[derive(Args)]
struct Scope {
    /// Audience (default: GOTRUE_JWT_AUD).
    #[arg(short = 'a', long = "aud", value_name = "AUD")]
    aud: Option<String>,
    /// Instance id (default: the nil UUID of single-instance mode).
    #[arg(short = 'i', long = "instance_id", value_name = "UUID")]
    instance_id: Option<String>,
}

impl Scope {
    fn instance(&self) -> Result<Uuid, String> {
        match self.instance_id.as_deref().map(str::trim).filter(|s| !s.is_empty()) {
            None => Ok(gotrue::domain::SINGLE_INSTANCE_ID),
            Some(s) => Uuid::parse_str(s).map_err(|_| format!("invalid instance id {s:?}: not a UUID")),
        }
    }
}

#[derive(Subcommand)]
enum AdminCommand {
    /// Create a user: `createuser <email> <password> [role]`.
    #[command(name = "createuser")]
    CreateUser {
        /// The user's email address.
        email: String,
        /// The user's password.
        password: String,
        /// Role (default: GOTRUE_JWT_DEFAULT_GROUP_NAME; wins over --admin).
        role: Option<String>,
        /// Confirm the address now (also when GOTRUE_MAILER_AUTOCONFIRM is on).
        #[arg(long)]
        confirm: bool,
        /// Give the admin role (GOTRUE_JWT_ADMIN_GROUP_NAME).
        #[arg(long)]
        admin: bool,
        /// Make the user a super admin of the instance.
        #[arg(long)]
        superadmin: bool,
        #[command(flatten)]
        scope: Scope,
    },
    /// Delete a user, named by email (in the audience) or by id; their sessions go too.
    #[command(name = "deleteuser")]
    DeleteUser {
        /// The user's email or id.
        user: String,
        #[command(flatten)]
        scope: Scope,
    },
    /// List users: id, email, audience, role, confirmed (every audience unless -a is given).
    #[command(name = "listusers")]
    ListUsers {
        /// One JSON object per line instead of a table.
        #[arg(long)]
        json: bool,
        #[command(flatten)]
        scope: Scope,
    },
}

fn load(cli: &Cli) -> Result<Config, String> {
    let env = Env::load(cli.config.as_deref()).map_err(|e| e.to_string())?;
    Config::from_env(&env).map_err(|e| e.to_string())
}

async fn run(cli: Cli) -> Result<(), String> {
    match cli.command.as_ref().unwrap_or(&Command::Serve) {
        Command::Version => {
            println!("{}", gotrue::VERSION);
            Ok(())
        }
        Command::Migrate => {
            let config = load(&cli)?;
            let _telemetry = telemetry::init(&config)?;
            let store = wiring::Store::open(&config).await?;
            print!("{}", gotrue::adapters::db::migrate::render_status(&store.status().await?));
            let after = store.migrate().await?;
            print!("{}", gotrue::adapters::db::migrate::render_status(&after));
            store.close().await;
            Ok(())
        }
        Command::Admin { command } => {
            let config = load(&cli)?;
            let _telemetry = telemetry::init(&config)?;
            let (service, store) = wiring::open_service(&config).await?;
            let result = admin(&service, &store, &config, command).await;
            store.close().await;
            result
        }
        Command::Multi => {
            let mut config = load(&cli)?;
            config.multi_instance_mode = true;
            let _telemetry = telemetry::init(&config)?;
            let built = wiring::build(config, wiring::Overrides::default()).await?;
            wiring::serve(built).await
        }
        Command::Serve => {
            let config = load(&cli)?;
            let _telemetry = telemetry::init(&config)?;
            let built = wiring::build(config, wiring::Overrides::default()).await?;
            wiring::serve(built).await
        }
    }
}

/// The configuration the admin commands use for an instance: the environment's, or in
/// multi-instance mode (`GOTRUE_MULTIINSTANCEMODE`) the instance's stored one.
async fn instance_config(store: &wiring::Store, config: &Config, instance: Uuid) -> Result<std::sync::Arc<InstanceConfig>, String> {
    if !config.multi_instance_mode {
        return Ok(std::sync::Arc::new(config.instance.clone()));
    }
    let stored = gotrue::app::instances::stored_config(store.instances().as_ref(), &config.instance, instance).await?;
    Ok(std::sync::Arc::new(stored))
}

async fn admin(service: &gotrue::app::Service, store: &wiring::Store, config: &Config, command: &AdminCommand) -> Result<(), String> {
    match command {
        AdminCommand::CreateUser { email, password, role, confirm, admin, superadmin, scope } => {
            let instance_config = instance_config(store, config, scope.instance()?).await?;
            let user = service
                .cli_create_user(
                    instance_config,
                    CreateUser {
                        instance_id: scope.instance()?,
                        aud: scope.aud.clone(),
                        email: email.clone(),
                        password: SecretString::from(password.clone()),
                        role: role.clone(),
                        admin: *admin,
                        super_admin: *superadmin,
                        confirm: *confirm,
                    },
                )
                .await
                .map_err(cli_error)?;
            println!("Created user: {} ({})", user.email, user.id);
            Ok(())
        }
        AdminCommand::DeleteUser { user, scope } => {
            let instance = scope.instance()?;
            let instance_config = instance_config(store, config, instance).await?;
            let default_aud = instance_config.jwt.aud.clone();
            match service.cli_delete_user(instance_config, instance, scope.aud.clone(), user).await {
                Ok(u) => {
                    println!("Removed user: {user} ({})", u.id);
                    Ok(())
                }
                Err(AuthError::UserNotFound) => Err(format!(
                    "user not found: {user:?} is neither the email of a user in audience {:?} nor the id of a user of instance {instance}",
                    scope.aud.clone().unwrap_or(default_aud)
                )),
                Err(e) => Err(cli_error(e)),
            }
        }
        AdminCommand::ListUsers { json, scope } => {
            let users = service.all_users(scope.instance()?, scope.aud.as_deref()).await.map_err(cli_error)?;
            print!("{}", render_users(&users, *json));
            Ok(())
        }
    }
}

/// The message an operator sees: as the API words it, plus the cause of internal errors.
fn cli_error(e: AuthError) -> String {
    match e {
        AuthError::Email(gotrue::domain::email::EmailError::Invalid(why)) => format!("Unable to validate email address: {why}"),
        AuthError::Internal { msg, source } | AuthError::Unavailable { msg, source } => format!("{msg}: {source}"),
        other => other.to_string(),
    }
}

/// `listusers` output: an aligned table, or JSON lines.
fn render_users(users: &[gotrue::domain::user::User], json: bool) -> String {
    let rows: Vec<[String; 5]> = users
        .iter()
        .map(|u| [u.id.to_string(), u.email.clone(), u.aud.clone(), u.role.clone(), if u.is_confirmed() { "yes" } else { "no" }.to_owned()])
        .collect();
    let mut out = String::new();
    if json {
        #[derive(serde::Serialize)]
        struct Line<'a> {
            id: &'a str,
            email: &'a str,
            aud: &'a str,
            role: &'a str,
            confirmed: bool,
        }
        for (u, r) in users.iter().zip(&rows) {
            let line = Line { id: &r[0], email: &r[1], aud: &r[2], role: &r[3], confirmed: u.is_confirmed() };
            out.push_str(&serde_json::to_string(&line).unwrap_or_default());
            out.push('\n');
        }
        return out;
    }
    let header = ["ID", "EMAIL", "AUD", "ROLE", "CONFIRMED"].map(str::to_owned);
    let mut widths = header.clone().map(|h| h.chars().count());
    for r in &rows {
        for (w, c) in widths.iter_mut().zip(r) {
            *w = (*w).max(c.chars().count());
        }
    }
    for r in std::iter::once(&header).chain(&rows) {
        let cells: Vec<String> = r.iter().zip(widths).map(|(c, w)| format!("{c:<w$}")).collect();
        out.push_str(cells.join("  ").trim_end());
        out.push('\n');
    }
    out
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let rt = match tokio::runtime::Builder::new_multi_thread().enable_all().build() {
        Ok(rt) => rt,
        Err(e) => {
            eprintln!("gotrue: could not start the runtime: {e}");
            return ExitCode::FAILURE;
        }
    };
    let result = rt.block_on(run(cli));
    // The command is done (a server has drained already): a background task that does not
    // stop must not keep the process alive.
    rt.shutdown_timeout(std::time::Duration::from_secs(5));
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("gotrue: {e}");
            ExitCode::FAILURE
        }
    }
}
