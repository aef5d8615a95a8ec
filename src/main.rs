//! The `gotrue` command line: `serve` (default), `migrate`, `version`.

use std::path::PathBuf;
use std::process::ExitCode;

use clap::{Parser, Subcommand};
use gotrue::app::config::{Config, Env};
use gotrue::app::{telemetry, wiring};

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
    /// Create or upgrade the database schema (idempotent; upgrades an upstream GoTrue database in place).
    Migrate,
    /// Print the git commit this binary was built from.
    Version,
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
            telemetry::init(&config.logging)?;
            let store = wiring::Store::open(&config).await?;
            print!("{}", gotrue::adapters::db::migrate::render_status(&store.status().await?));
            let after = store.migrate().await?;
            print!("{}", gotrue::adapters::db::migrate::render_status(&after));
            store.close().await;
            Ok(())
        }
        Command::Serve => {
            let config = load(&cli)?;
            telemetry::init(&config.logging)?;
            let built = wiring::build(config, wiring::Overrides::default()).await?;
            wiring::serve(built).await
        }
    }
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
    match rt.block_on(run(cli)) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            tracing::error!("{e}");
            eprintln!("gotrue: {e}");
            ExitCode::FAILURE
        }
    }
}
