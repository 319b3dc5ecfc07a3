//! Between the contract's messages and the store's types: request fields checked with errors that name the
//! field, store outcomes and errors mapped to statuses, and the job result's JSON shape.
//!
//! A completed job's `result` is `{"metrics": {name: value, …}}`, plus `"artifact_digest"` for an export: the
//! worker's metric dict as it reported it, read back by `GetRun`.

use std::collections::HashMap;
use std::time::Duration;

use sensgrid_proto::v1 as pb;
use serde_json::{Map, Value};
use tonic::Status;

use crate::store::{CellSpec, ClaimedJob, Job, JobId, JobKind, JobState, Lease, Run, RunState, RunSummary, StoreError};
use sensgrid_client::is_sha256_hex;

/// The criteria a worker knows (`worker prune --criterion`): the pruning code's names.
pub const CRITERIA: [&str; 3] = sensgrid_model::prune::Criterion::NAMES;

/// The status of a store failure: a bad parameter is the caller's (`INVALID_ARGUMENT`), a missing artifact or
/// worker `NOT_FOUND`, a conflicting artifact `ALREADY_EXISTS`; a database failure is `UNAVAILABLE`, so callers
/// retry.
pub fn store_status(error: StoreError) -> Status {
    match &error {
        StoreError::InvalidInput { .. } => Status::invalid_argument(error.to_string()),
        StoreError::ArtifactNotFound { .. } | StoreError::WorkerNotFound { .. } => Status::not_found(error.to_string()),
        StoreError::ArtifactConflict { .. } => Status::already_exists(error.to_string()),
        StoreError::Backend { .. } => Status::unavailable(format!("job store: {error}")),
    }
}

/// The lease a heartbeat, completion or failure names.
///
/// # Errors
///
/// `INVALID_ARGUMENT` naming `job_id` or `lease_epoch` when either is not positive (no claim hands those out).
pub fn lease(job_id: i64, lease_epoch: i64) -> Result<Lease, Status> {
    if job_id <= 0 {
        return Err(Status::invalid_argument(format!(
            "job_id: expected a job id above 0, got {job_id}"
        )));
    }
    if lease_epoch <= 0 {
        return Err(Status::invalid_argument(format!(
            "lease_epoch: expected the epoch of a claim (above 0), got {lease_epoch}"
        )));
    }
    Ok(Lease {
        job_id: JobId(job_id),
        epoch: lease_epoch,
    })
}

/// Checks that `digest` (the request field `field`) is a sha256 in lowercase hex.
///
/// # Errors
///
/// `INVALID_ARGUMENT` naming the field and the value.
pub fn digest(field: &str, digest: &str) -> Result<(), Status> {
    if is_sha256_hex(digest) {
        Ok(())
    } else {
        Err(Status::invalid_argument(format!(
            "{field}: expected a sha256 as 64 lowercase hex digits, got '{}'",
            digest.escape_debug()
        )))
    }
}

/// The stored result of a completion: its metrics, the seconds and device it took, for an export the pruned
/// model's digest and the prune's report, for a recover job recovered.onnx's digest and its report
/// (`recover_report`, the worker's recover_report.json).
///
/// # Errors
///
/// `INVALID_ARGUMENT` naming the metric or report entry that is not a finite number (JSON has no NaN or
/// infinity), or a malformed `artifact_digest`.
pub fn completion_result(request: &pb::CompleteJobRequest) -> Result<Value, Status> {
    let numbers = |field: &str, values: &HashMap<String, f64>| -> Result<Value, Status> {
        let mut stored = Map::new();
        for (name, &value) in values {
            let number = serde_json::Number::from_f64(value).ok_or_else(|| {
                Status::invalid_argument(format!(
                    "{field}[\"{}\"]: expected a finite number, got {value}",
                    name.escape_debug()
                ))
            })?;
            stored.insert(name.clone(), Value::Number(number));
        }
        Ok(Value::Object(stored))
    };
    let mut result = Map::new();
    result.insert("metrics".into(), numbers("metrics", &request.metrics)?);
    if !request.artifact_digest.is_empty() {
        digest("artifact_digest", &request.artifact_digest)?;
        result.insert("artifact_digest".into(), Value::String(request.artifact_digest.clone()));
    }
    if let Some(seconds) = serde_json::Number::from_f64(request.seconds).filter(|_| request.seconds > 0.0) {
        result.insert("seconds".into(), Value::Number(seconds));
    }
    if !request.device.is_empty() {
        result.insert("device".into(), Value::String(request.device.clone()));
    }
    if !request.report.is_empty() {
        result.insert("report".into(), numbers("report", &request.report)?);
    }
    if !request.report_json.is_empty() {
        match serde_json::from_str::<Value>(&request.report_json) {
            Ok(report @ Value::Object(_)) => {
                result.insert("recover_report".into(), report);
            }
            Ok(_) | Err(_) => {
                return Err(Status::invalid_argument(format!(
                    "report_json: expected recover_report.json's JSON object, got '{}'",
                    request.report_json.escape_debug()
                )));
            }
        }
    }
    Ok(Value::Object(result))
}

/// A recover job's progress as the store keeps it: `{"step": n, "steps": n, "loss": x, "metric": y, "best": z}`,
/// a number that is not finite (the metrics before the first eval are NaN) as null. A worker that reports no
/// step count (0) leaves `steps` null.
pub fn recover_progress(progress: &pb::RecoverProgress) -> Value {
    let number = |x: f64| serde_json::Number::from_f64(x).map_or(Value::Null, Value::Number);
    serde_json::json!({
        "step": progress.step,
        "steps": (progress.steps > 0).then_some(progress.steps),
        "loss": number(progress.loss),
        "metric": number(progress.metric),
        "best": number(progress.best),
    })
}

/// The metrics of a stored result (see the module docs); empty when there is none.
pub fn result_metrics(result: Option<&Value>) -> HashMap<String, f64> {
    result
        .and_then(|r| r.get("metrics"))
        .and_then(Value::as_object)
        .map(|metrics| {
            metrics
                .iter()
                .filter_map(|(name, value)| Some((name.clone(), value.as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// The grid of a `CreateRunRequest`. Ratios and keys are checked by the store, naming `cells[i]`.
///
/// # Errors
///
/// `INVALID_ARGUMENT` naming `cells[i].result_json` when a known result is not a JSON object.
pub fn cells(cells: Vec<pb::Cell>) -> Result<Vec<CellSpec>, Status> {
    cells
        .into_iter()
        .enumerate()
        .map(|(i, c)| {
            let result = match c.result_json.as_str() {
                "" => None,
                text => match serde_json::from_str::<Value>(text) {
                    Ok(value @ Value::Object(_)) => Some(value),
                    Ok(_) | Err(_) => {
                        return Err(Status::invalid_argument(format!(
                            "cells[{i}].result_json: expected a JSON object, got '{}'",
                            text.escape_debug()
                        )));
                    }
                },
            };
            Ok(CellSpec {
                group_key: c.group_key,
                ratio: c.ratio,
                result,
            })
        })
        .collect()
}

/// The message of a claimed job: the claim plus its run's fields. `plan` is a probe's own candidate; other jobs
/// carry the run's plan (empty before planning). A recover job's own fields are [`recovery`]'s.
pub fn job_message(claimed: &ClaimedJob, run: &Run, plan: Option<&Value>, lease: Duration) -> pb::Job {
    pb::Job {
        job_id: claimed.lease.job_id.0,
        lease_epoch: claimed.lease.epoch,
        run_id: claimed.run_id.0,
        kind: claimed.kind as i32,
        group_key: claimed.group_key.clone().unwrap_or_default(),
        ratio: claimed.ratio.unwrap_or_default(),
        criterion: run.criterion.clone(),
        config_yaml: run.config_yaml.clone(),
        model_digest: run.model_digest.clone(),
        dataset_digest: run.dataset_digest.clone(),
        plan: plan_map(plan.or(run.plan.as_ref())),
        lease_ms: u32::try_from(lease.as_millis()).unwrap_or(u32::MAX),
        input_shape: run
            .spec
            .get("input_shape")
            .and_then(Value::as_array)
            .map(|dims| dims.iter().filter_map(Value::as_u64).collect())
            .unwrap_or_default(),
        ..pb::Job::default()
    }
}

/// What a recover job's message names besides the run's fields.
#[derive(Clone, Debug, PartialEq)]
pub struct Recovery {
    /// The pruned model the export uploaded.
    pub student_digest: String,
    /// The training set bundled at submit ([`crate::spec::RecoverSpec`]).
    pub train_set_digest: String,
    /// The last checkpoint an earlier attempt uploaded.
    pub checkpoint_digest: Option<String>,
}

/// The [`Recovery`] of recover job `job_id` among its run's `jobs`.
///
/// # Errors
///
/// `FAILED_PRECONDITION` when the run has no done export with an uploaded model or no training set, or the job
/// is not among `jobs`.
pub fn recovery(job_id: JobId, run: &Run, jobs: &[Job]) -> Result<Recovery, Status> {
    let refuse = |why: &str| Status::failed_precondition(format!("recover job {job_id} of run {}: {why}", run.id));
    let student_digest = jobs
        .iter()
        .find(|j| j.kind == JobKind::Export && j.state == JobState::Done)
        .and_then(|j| j.result.as_ref()?.get("artifact_digest")?.as_str())
        .ok_or_else(|| refuse("the run has no done export with an uploaded model"))?
        .to_owned();
    let train_set_digest = crate::spec::RunSpec::from_json(&run.spec)
        .ok()
        .and_then(|spec| spec.recover)
        .map(|recover| recover.train_set_digest)
        .ok_or_else(|| refuse("the run's spec names no training set (submitted without a Recover section)"))?;
    let job = jobs
        .iter()
        .find(|j| j.id == job_id)
        .ok_or_else(|| refuse("the job is not among the run's jobs"))?;
    Ok(Recovery {
        student_digest,
        train_set_digest,
        checkpoint_digest: job.checkpoint_digest.clone(),
    })
}

/// A stored plan (`{"<group key>": ratio}`) as the contract carries it (empty for none).
pub fn plan_map(plan: Option<&Value>) -> HashMap<String, f64> {
    plan.and_then(Value::as_object)
        .map(|plan| {
            plan.iter()
                .filter_map(|(key, ratio)| Some((key.clone(), ratio.as_f64()?)))
                .collect()
        })
        .unwrap_or_default()
}

/// A time as RFC 3339, empty for none.
pub fn timestamp(at: Option<time::OffsetDateTime>) -> String {
    at.and_then(|at| at.format(&time::format_description::well_known::Rfc3339).ok())
        .unwrap_or_default()
}

/// A run's line in `ListRunsResponse` and `GetRunResponse`.
pub fn run_summary(summary: &RunSummary) -> pb::RunSummary {
    let run = &summary.run;
    let counts = summary.jobs;
    pb::RunSummary {
        run_id: run.id.0,
        state: run.state.into(),
        name: run.spec.get("name").and_then(Value::as_str).unwrap_or_default().into(),
        created_at: timestamp(Some(run.created_at)),
        finished_at: timestamp(run.finished_at),
        error: run.error.clone().unwrap_or_default(),
        jobs: counts
            .by_state()
            .into_iter()
            .map(|(state, n)| (state.as_str().to_owned(), n))
            .collect(),
    }
}

/// The run state a `ListRunsRequest` names; unspecified for all.
///
/// # Errors
///
/// `INVALID_ARGUMENT` naming `state` for a number that is not a run state.
pub fn run_state_filter(state: i32) -> Result<Option<RunState>, Status> {
    match RunState::try_from(state) {
        Ok(RunState::Unspecified) => Ok(None),
        Ok(state) => Ok(Some(state)),
        Err(_) => Err(Status::invalid_argument(format!(
            "state: expected a run state ({}), got {state}",
            RunState::NAMES.join(", ")
        ))),
    }
}

/// A job's line in `GetRunResponse`.
pub fn job_status(job: &Job) -> pb::JobStatus {
    pb::JobStatus {
        job_id: job.id.0,
        kind: job.kind.into(),
        state: job.state.into(),
        group_key: job.group_key.clone().unwrap_or_default(),
        ratio: job.ratio.unwrap_or_default(),
        attempt: i32::try_from(job.attempt).unwrap_or(i32::MAX),
        metrics: result_metrics(job.result.as_ref()),
        last_error: job.last_error.clone().unwrap_or_default(),
        result_json: job.result.as_ref().map(Value::to_string).unwrap_or_default(),
        done_by: job.done_by.map_or(0, |w| w.0),
        lease_owner: job.lease_owner.map_or(0, |w| w.0),
        leased_at: timestamp(job.leased_at),
        finished_at: timestamp(job.finished_at),
        probe_step: job.probe_step.unwrap_or_default(),
        plan_json: job.plan.as_ref().map(Value::to_string).unwrap_or_default(),
        checkpoint_digest: job.checkpoint_digest.clone().unwrap_or_default(),
        progress_json: job.progress.as_ref().map(Value::to_string).unwrap_or_default(),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn completion_result_round_trips_metrics_and_names_bad_ones() {
        let request = |metrics: &[(&str, f64)], digest: &str| pb::CompleteJobRequest {
            metrics: metrics.iter().map(|&(k, v)| (k.to_owned(), v)).collect(),
            artifact_digest: digest.into(),
            ..Default::default()
        };
        let metrics = [("hmean", 0.75), ("num_samples", 500.0)];
        let result = completion_result(&request(&metrics, "")).unwrap();
        assert_eq!(
            result,
            serde_json::json!({"metrics": {"hmean": 0.75, "num_samples": 500.0}})
        );
        assert_eq!(
            result_metrics(Some(&result)),
            metrics.iter().map(|&(k, v)| (k.to_owned(), v)).collect()
        );
        assert_eq!(result_metrics(None), HashMap::new());
        let timed = pb::CompleteJobRequest {
            seconds: 1.5,
            device: "cuda:0".into(),
            report: HashMap::from([("flops_after".to_string(), 10.0)]),
            ..request(&metrics, "")
        };
        assert_eq!(
            completion_result(&timed).unwrap(),
            serde_json::json!({"metrics": {"hmean": 0.75, "num_samples": 500.0}, "seconds": 1.5,
                "device": "cuda:0", "report": {"flops_after": 10.0}})
        );

        let status = completion_result(&request(&[("acc", f64::NAN)], "")).unwrap_err();
        assert_eq!(status.code(), tonic::Code::InvalidArgument);
        assert_eq!(status.message(), "metrics[\"acc\"]: expected a finite number, got NaN");
        let status = completion_result(&request(&[], "abc")).unwrap_err();
        assert!(
            status.message().starts_with("artifact_digest: "),
            "{}",
            status.message()
        );
    }

    #[test]
    fn lease_refuses_ids_no_claim_hands_out() {
        assert_eq!(
            lease(0, 1).unwrap_err().message(),
            "job_id: expected a job id above 0, got 0"
        );
        assert!(lease(3, 0).unwrap_err().message().starts_with("lease_epoch: "));
        assert_eq!(
            lease(3, 2).unwrap(),
            Lease {
                job_id: JobId(3),
                epoch: 2
            }
        );
    }
}
