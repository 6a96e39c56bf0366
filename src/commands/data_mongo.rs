//! `netsec data push | pull`: the entry points for moving data sets into and out of MongoDB.

use std::io::{IsTerminal, Write};

use anyhow::Context;
use indicatif::{ProgressBar, ProgressStyle};

use crate::cli::{MongoArgs, PullArgs, PushArgs};
use crate::data::dataset::invalid;
use crate::data::typed::{LabelPresence, type_table};
use crate::data::{Schema, load_file};
use crate::exit::{Outcome, UsageError};
use crate::ingest::mongo::{MongoTarget, pull as pull_rows, push as push_rows};

fn target(args: &MongoArgs) -> MongoTarget {
    MongoTarget {
        uri: args.mongo_uri.clone(),
        db: args.db.clone(),
        collection: args.collection.clone(),
    }
}

/// Validates the file, then inserts it; prints how many rows were new.
pub async fn push(args: PushArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    if args.batch_size == 0 {
        return Err(UsageError("--batch-size must be at least 1".into()).into());
    }
    let schema = Schema::from_file(&args.schema)?;
    let table = load_file(&args.data)?;
    let typed = type_table(&table, &schema, LabelPresence::Required);
    if !typed.issues.is_empty() {
        return Err(invalid(&table, &schema, &typed)).context("nothing was pushed");
    }
    let target = target(&args.mongo);
    let bar = std::io::stderr().is_terminal().then(|| {
        let bar = ProgressBar::new(typed.rows as u64);
        bar.set_style(
            ProgressStyle::with_template("{bar:30} {pos}/{len} rows  {elapsed_precise}")
                .unwrap_or_else(|_| ProgressStyle::default_bar()),
        );
        bar
    });
    let progress = |done: usize| {
        if let Some(bar) = &bar {
            bar.set_position(done as u64);
        }
    };
    let report = push_rows(&target, &schema, &typed, args.batch_size, &progress).await?;
    if let Some(bar) = &bar {
        bar.finish_and_clear();
    }
    writeln!(
        out,
        "pushed {} rows of {} to {}: {} inserted, {} already there",
        typed.rows,
        table.source,
        target.display(),
        report.inserted,
        report.already_present
    )?;
    Ok(Outcome::Success)
}

/// Reads the collection into a file.
pub async fn pull(args: PullArgs, out: &mut dyn Write) -> anyhow::Result<Outcome> {
    let schema = Schema::from_file(&args.schema)?;
    let query = match &args.query {
        Some(text) => Some(
            serde_json::from_str::<serde_json::Value>(text)
                .map_err(|e| UsageError(format!("--query is not JSON: {e}")))?,
        ),
        None => None,
    };
    let target = target(&args.mongo);
    let mut table = pull_rows(&target, &schema, query.as_ref()).await?;
    super::write_frame(&args.output, &mut table.frame)?;
    writeln!(
        out,
        "pulled {} rows from {} to {}",
        table.len(),
        target.display(),
        args.output.display()
    )?;
    Ok(Outcome::Success)
}
