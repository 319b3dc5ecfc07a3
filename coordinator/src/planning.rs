//! Planning a finished grid: the losses of its done cells, the ratios for the `Prune` target
//! (`sensgrid_model::prune::planner`), and the FLOPs before and after the plan's structural prune, counted by
//! `sensgrid_model` on the real pruned graph at the run's input shape. Used by the pipeline (a run with a
//! `Prune` section) and by `PlanRun` (`coordinator plan`). Blocking: callers run it off the async threads.

use std::path::PathBuf;

use sensgrid_model::analysis::count;
use sensgrid_model::analysis::groups::{self, Analysis};
use sensgrid_model::ir::Graph;
use sensgrid_model::onnx;
use sensgrid_model::prune::planner::{self, Sensitivities};
use sensgrid_model::prune::search::{self, Chain, Decision, Measured};
use sensgrid_model::prune::{Criterion, Cut, Plan, structural};
use serde_json::Value;

use crate::sensitivity;
use crate::spec::{MeasuredSpec, PruneTarget, RunSpec};
use crate::store::{Job, JobKind, JobState, Run};

/// What [`plan`] needs.
pub struct PlanRequest {
    pub run: Run,
    pub jobs: Vec<Job>,
    pub spec: RunSpec,
    pub target: PruneTarget,
    /// The model's file in the artifact directory.
    pub model: PathBuf,
}

/// A plan with what it does to the model.
#[derive(Clone, Debug, PartialEq)]
pub struct Planned {
    /// Every analysed group, 0.0 where it stays whole.
    pub ratios: Plan,
    /// The loss threshold the ratios come from; for a measured target, the chosen probe's measured loss.
    pub max_loss: f64,
    pub flops_before: u64,
    pub flops_after: u64,
}

impl Planned {
    /// The plan as stored with the run and sent to the export job: `{"<group key>": ratio}`.
    pub fn plan_json(&self) -> Value {
        plan_json(&self.ratios)
    }
}

/// A plan as the store keeps it (the run's, a probe's): `{"<group key>": ratio}`.
fn plan_json(ratios: &Plan) -> Value {
    Value::Object(
        ratios
            .iter()
            .filter_map(|(key, &ratio)| Some((key.clone(), Value::Number(serde_json::Number::from_f64(ratio)?))))
            .collect(),
    )
}

/// The run's metric in its done baseline.
///
/// # Errors
///
/// A baseline that is not done or lacks the metric.
fn run_baseline(jobs: &[Job], metric: &str) -> Result<f64, String> {
    let baseline = jobs
        .iter()
        .find(|j| j.kind == JobKind::Baseline && j.state == JobState::Done)
        .and_then(|j| j.result.as_ref())
        .ok_or("the baseline is not done")?;
    sensitivity::metric(baseline, metric).ok_or_else(|| format!("the baseline has no '{metric}'"))
}

/// The sensitivities of a run's done cells on its metric.
///
/// # Errors
///
/// A run whose baseline is not done or lacks the metric.
pub fn run_sensitivities(jobs: &[Job], metric: &str) -> Result<Sensitivities, String> {
    let baseline = run_baseline(jobs, metric)?;
    let cells = jobs
        .iter()
        .filter(|j| j.kind == JobKind::Cell && j.state == JobState::Done)
        .filter_map(|j| Some((j.group_key.as_deref()?, j.ratio?, j.result.as_ref()?)));
    Ok(sensitivity::sensitivities(baseline, metric, cells))
}

/// Plans `request.run` for its target.
///
/// # Errors
///
/// No done cell, an unreadable model, a criterion or plan the pruning code refuses, or a FLOPs target the
/// tested ratios cannot reach; one line each.
pub fn plan(request: &PlanRequest) -> Result<Planned, String> {
    let table = run_sensitivities(&request.jobs, &request.spec.metric)?;
    if table.is_empty() {
        return Err("no cell is done: nothing to plan from".into());
    }
    let graph = onnx::read(&request.model).map_err(|e| format!("the run's model: {e}"))?;
    let criterion: Criterion = request.run.criterion.parse().map_err(|e| format!("{e}"))?;
    let shape = std::slice::from_ref(&request.spec.input_shape);
    let analysis = groups::analyse_at(&graph, shape).map_err(|e| e.to_string())?;
    let flops_before = count::flops_at(&graph, shape).map_err(|e| e.to_string())?;
    let mut flops_of = |plan: &Plan| pruned_flops(&graph, &analysis, shape, plan, criterion);
    let (ratios, max_loss) = match request.target {
        PruneTarget::MaxLoss(loss) => (planner::ratios_by_loss(&table, loss).map_err(|e| e.to_string())?, loss),
        PruneTarget::Measured(_) => {
            return Err(
                "a measured target (max_model_loss, latency_reduction) is planned by the run's probes, not from the \
                 table alone: set it in the config's Prune section"
                    .into(),
            );
        }
        PruneTarget::FlopsReduction(share) => {
            let found =
                planner::ratios_by_flops(&table, share, &mut flops_of, flops_before).map_err(|e| e.to_string())?;
            (found.ratios, found.threshold)
        }
    };
    let flops_after = flops_of(&planner::cut_plan(&ratios)).map_err(|e| e.to_string())?;
    Ok(Planned {
        ratios,
        max_loss,
        flops_before,
        flops_after,
    })
}

/// What the search of a measured target does next ([`probe_round`]).
#[derive(Clone, Debug, PartialEq)]
pub enum ProbeRound {
    /// Queue these probes: (chain step, its plan as stored).
    Probe(Vec<(u32, Value)>),
    /// The plan is the chosen probe's; `why` says which target held and by how much.
    Chosen { planned: Planned, step: usize, why: String },
    /// No candidate meets the target: why, naming the best measured.
    Unreachable(String),
}

/// One probe's measurement as the search reads it, from its stored result.
///
/// # Errors
/// A result without the metric or the FLOPs and latency report a probe job sends.
pub fn probe_measurement(job: &Job, baseline: f64, metric: &str) -> Result<Measured, String> {
    let (Some(step), Some(result)) = (job.probe_step, job.result.as_ref()) else {
        return Err(format!("job {} is not a done probe", job.id));
    };
    measurement(step as usize, result, baseline, metric).map_err(|e| format!("probe {} (step {step}) {e}", job.id))
}

/// The measurement of the probe at `step` from its stored result, shared by the search ([`probe_measurement`])
/// and `coordinator results` (which reads jobs over gRPC), so both report the same loss and reductions.
///
/// # Errors
/// What the result lacks, as `reported no KEY`.
pub fn measurement(step: usize, result: &Value, baseline: f64, metric: &str) -> Result<Measured, String> {
    let loss = sensitivity::cell_loss(result, baseline, metric).ok_or_else(|| format!("reported no '{metric}'"))?;
    let report = |key: &str| sensitivity::report(result, key).ok_or_else(|| format!("reported no {key}"));
    let reduction = sensitivity::reduction;
    Ok(Measured {
        step,
        loss,
        flops_reduction: reduction(report("flops_before")?, report("flops_after")?),
        // The worker's pessimistic paired estimate (the upper quartile of pruned/unpruned run pairs), so that
        // the export's own measurement of the chosen plan reaches a latency target too.
        latency_reduction: report("latency_reduction_low")?,
    })
}

/// The next move of a measured target's search (`sensgrid_model::prune::search`): the chain of candidate
/// plans from the run's done cells (costs per FLOP from the spec's groups), the run's done probes as
/// measurements, and `workers` probes a round at most. Blocking, like [`plan`].
///
/// # Errors
/// No done cell, an unreadable model, a probe without its report, or a search error; one line each.
pub fn probe_round(request: &PlanRequest, target: &MeasuredSpec, workers: usize) -> Result<ProbeRound, String> {
    let metric = &request.spec.metric;
    let table = run_sensitivities(&request.jobs, metric)?;
    if table.is_empty() {
        return Err("no cell is done: nothing to plan from".into());
    }
    let group_flops = request.spec.groups.iter().map(|g| (g.key.clone(), g.flops)).collect();
    let chain = Chain::new(&table, &group_flops);
    let baseline = run_baseline(&request.jobs, metric)?;
    let probes: Vec<&Job> = request
        .jobs
        .iter()
        .filter(|j| j.kind == JobKind::Probe && j.state == JobState::Done)
        .collect();
    let measured = probes
        .iter()
        .map(|j| probe_measurement(j, baseline, metric))
        .collect::<Result<Vec<_>, _>>()?;
    let graph = onnx::read(&request.model).map_err(|e| format!("the run's model: {e}"))?;
    let criterion: Criterion = request.run.criterion.parse().map_err(|e| format!("{e}"))?;
    let shape = std::slice::from_ref(&request.spec.input_shape);
    let analysis = groups::analyse_at(&graph, shape).map_err(|e| e.to_string())?;
    let flops_before = count::flops_at(&graph, shape).map_err(|e| e.to_string())?;
    let mut flops_reduction = |step: usize| -> sensgrid_model::Result<f64> {
        let after = pruned_flops(
            &graph,
            &analysis,
            shape,
            &planner::cut_plan(&chain.plan(step)),
            criterion,
        )?;
        Ok(1.0 - after as f64 / flops_before.max(1) as f64)
    };
    let decision = search::decide(&target.target(), chain.len(), &measured, workers, &mut flops_reduction)
        .map_err(|e| e.to_string())?;
    Ok(match decision {
        Decision::Probe(steps) => ProbeRound::Probe(
            steps
                .into_iter()
                .map(|step| (u32::try_from(step).unwrap_or(u32::MAX), plan_json(&chain.plan(step))))
                .collect(),
        ),
        Decision::Chosen { step, why } => {
            let chosen = measured
                .iter()
                .find(|m| m.step == step)
                .expect("decide chooses a measured step");
            let ratios = chain.plan(step);
            let flops_after = pruned_flops(&graph, &analysis, shape, &planner::cut_plan(&ratios), criterion)
                .map_err(|e| e.to_string())?;
            ProbeRound::Chosen {
                planned: Planned {
                    ratios,
                    max_loss: chosen.loss,
                    flops_before,
                    flops_after,
                },
                step,
                why,
            }
        }
        Decision::Unreachable(why) => ProbeRound::Unreachable(why),
    })
}

/// The FLOPs of `graph` structurally pruned by `plan` (no zero ratios), at `shape`.
fn pruned_flops(
    graph: &Graph,
    analysis: &Analysis,
    shape: &[Vec<usize>],
    plan: &Plan,
    criterion: Criterion,
) -> sensgrid_model::Result<u64> {
    let cut = Cut::plan(graph, analysis, plan, criterion)?;
    let pruned = structural::prune(graph, analysis, &cut)?;
    count::flops_at(&pruned.graph, shape)
}
