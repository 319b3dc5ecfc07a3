//! `coordinator plan`: per-group ratios for a finished run, by PaddleSlim's max loss, a FLOPs reduction or a
//! measured target (searched with probe jobs), and with `--export` the export job by that plan.

use anyhow::{Context, Result, bail};
use clap::Args;
use sensgrid_client::stdout::write_stdout;
use sensgrid_proto::v1 as pb;

use super::connection::Connection;

#[derive(Args)]
pub struct PlanArgs {
    run: i64,
    /// PaddleSlim's loss threshold: per group, the largest ratio whose loss stays under it (interpolated).
    #[arg(
        long,
        value_parser = share_arg,
        conflicts_with_all = ["flops_reduction", "max_model_loss", "latency_reduction"]
    )]
    max_loss: Option<f64>,
    /// The share of FLOPs to remove: alone, the smallest loss threshold whose plan removes at least this much;
    /// with --max-model-loss, the least cut that removes it, its loss measured.
    #[arg(long, value_parser = share_arg, conflicts_with = "latency_reduction")]
    flops_reduction: Option<f64>,
    /// The exported model's loss, measured on the eval set: the run searches candidate plans with probe jobs
    /// (it runs again until the plan and export are done; `coordinator watch RUN` follows it).
    #[arg(long, value_parser = share_arg)]
    max_model_loss: Option<f64>,
    /// The share of the latency to remove, measured on the workers' device by probe jobs.
    #[arg(long, value_parser = share_arg)]
    latency_reduction: Option<f64>,
    /// With a measured target: stop the search once its bracket's FLOPs reductions are this close.
    #[arg(long, value_parser = tolerance_arg)]
    tolerance: Option<f64>,
    /// Queue the export job by this plan (prune, evaluate, measure latency, upload the pruned model) and make
    /// it the run's. Without it, a --max-loss or --flops-reduction plan is printed, and stored as the run's
    /// only when the run has no export: plan.json, prune_report.json and pruned.onnx stay of one plan.
    #[arg(long)]
    export: bool,
    #[command(flatten)]
    connection: Connection,
}

/// A number as the `Prune` section takes a loss or a reduction: a share in (0, 1).
fn share_arg(text: &str) -> std::result::Result<f64, String> {
    let value = number_arg(text)?;
    // NaN fails both comparisons, so it is refused too.
    if value > 0.0 && value < 1.0 {
        Ok(value)
    } else {
        Err(format!("expected a share in (0, 1), got {value}"))
    }
}

/// The measured search's tolerance, as `Prune.tolerance` takes it: in [0, 1).
fn tolerance_arg(text: &str) -> std::result::Result<f64, String> {
    let value = number_arg(text)?;
    if (0.0..1.0).contains(&value) {
        Ok(value)
    } else {
        Err(format!("expected a number in [0, 1), got {value}"))
    }
}

fn number_arg(text: &str) -> std::result::Result<f64, String> {
    text.parse().map_err(|_| format!("expected a number, got '{text}'"))
}

pub async fn run(args: PlanArgs) -> Result<()> {
    let mut admin = args.connection.admin().await?;
    let measured = args.max_model_loss.is_some() || args.latency_reduction.is_some();
    // The run's export keeps its plan unless this one is exported too (see `PlanArgs::export`).
    let keeps_export_plan = !args.export
        && !measured
        && admin
            .get_run(pb::GetRunRequest { run_id: args.run })
            .await
            .context("GetRun")?
            .into_inner()
            .jobs
            .iter()
            .any(|job| job.kind() == pb::JobKind::Export);
    let target = match (args.max_loss, args.flops_reduction) {
        (Some(loss), _) => pb::plan_run_request::Target::MaxLoss(loss),
        _ if measured => pb::plan_run_request::Target::Measured(pb::MeasuredTarget {
            max_model_loss: args.max_model_loss,
            flops_reduction: args.flops_reduction,
            latency_reduction: args.latency_reduction,
            tolerance: args.tolerance,
        }),
        (None, Some(share)) => pb::plan_run_request::Target::FlopsReduction(share),
        (None, None) => bail!("set --max-loss, --flops-reduction, --max-model-loss or --latency-reduction"),
    };
    let planned = admin
        .plan_run(pb::PlanRunRequest {
            run_id: args.run,
            target: Some(target),
            export: args.export,
        })
        .await
        .context("PlanRun")?
        .into_inner();
    if measured {
        eprintln!(
            "run {}: searching the measured target with probes; `coordinator watch {}` follows it, `coordinator \
             results {} --out DIR` then writes the plan{}",
            args.run,
            args.run,
            args.run,
            if args.export { " and the pruned model" } else { "" }
        );
        return Ok(());
    }
    let reduction = 1.0 - planned.flops_after as f64 / planned.flops_before.max(1) as f64;
    let stored = if args.export {
        "; export queued"
    } else if keeps_export_plan {
        "; not stored: the run keeps the plan its export pruned by (--export replaces both)"
    } else {
        ""
    };
    eprintln!(
        "run {}: loss threshold {}, FLOPs {} -> {} ({:.1}% fewer){stored}",
        args.run,
        planned.max_loss,
        planned.flops_before,
        planned.flops_after,
        reduction * 100.0,
    );
    write_stdout(&format!("{}\n", planned.plan_json))
}
