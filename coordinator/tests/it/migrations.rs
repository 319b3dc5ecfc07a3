//! Every migration applies to a fresh database, enforces the rules between fields, and reverts cleanly.

use sensgrid_coordinator::MIGRATOR;
use sqlx::PgPool;
use time::OffsetDateTime;

/// The time every row of this test is written at.
const T0: OffsetDateTime = OffsetDateTime::UNIX_EPOCH;

async fn public_tables(pool: &PgPool) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT table_name::text FROM information_schema.tables
         WHERE table_schema = 'public' AND table_name <> '_sqlx_migrations' ORDER BY table_name",
    )
    .fetch_all(pool)
    .await
    .unwrap()
}

async fn enum_labels(pool: &PgPool, type_name: &str) -> Vec<String> {
    sqlx::query_scalar(
        "SELECT e.enumlabel::text FROM pg_enum e JOIN pg_type t ON t.oid = e.enumtypid
         WHERE t.typname = $1 ORDER BY e.enumsortorder",
    )
    .bind(type_name)
    .fetch_all(pool)
    .await
    .unwrap()
}

#[sqlx::test(migrations = false)]
async fn migrations_apply_enforce_and_revert(pool: PgPool) {
    MIGRATOR.run(&pool).await.expect("applying every migration");
    assert_eq!(public_tables(&pool).await, ["artifact", "job", "run", "worker"]);
    assert_eq!(
        enum_labels(&pool, "job_state").await,
        ["queued", "leased", "done", "failed", "cancelled", "skipped"]
    );
    // 0003 puts 'probe' before 'export', so that the claim's ORDER BY kind still dispatches the export last;
    // 0005 puts 'recover' after it (a recovery is queued once the export is done).
    assert_eq!(
        enum_labels(&pool, "job_kind").await,
        ["baseline", "cell", "probe", "export", "recover"]
    );

    let digest = "0".repeat(64);
    sqlx::query(
        "INSERT INTO artifact (digest, size_bytes, media_type, created_at) VALUES ($1, 1, 'application/onnx', $2)",
    )
    .bind(&digest)
    .bind(T0)
    .execute(&pool)
    .await
    .unwrap();
    let run_id: i64 = sqlx::query_scalar(
        "INSERT INTO run (config_yaml, model_digest, dataset_digest, criterion, max_attempts, created_at)
         VALUES ('Global: {}', $1, $1, 'l1_norm', 3, $2) RETURNING id",
    )
    .bind(&digest)
    .bind(T0)
    .fetch_one(&pool)
    .await
    .unwrap();

    // float8 keeps 0.1 exactly as written.
    let ratio: f64 = sqlx::query_scalar(
        "INSERT INTO job (run_id, kind, group_key, ratio, available_at, created_at)
         VALUES ($1, 'cell', 'conv2d_0.w_0', 0.1, $2, $2) RETURNING ratio",
    )
    .bind(run_id)
    .bind(T0)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ratio, 0.1);

    sqlx::query("INSERT INTO job (run_id, kind, available_at, created_at) VALUES ($1, 'baseline', $2, $2)")
        .bind(run_id)
        .bind(T0)
        .execute(&pool)
        .await
        .unwrap();

    // Each rule between fields refuses the row that breaks it, by name. Every row has its times ($2): the schema
    // has no clock defaults, the store binds them.
    for (sql, constraint) in [
        (
            "INSERT INTO job (run_id, kind, group_key, available_at, created_at) VALUES ($1, 'cell', 'conv2d_1.w_0', $2, $2)",
            "job_cell_has_group_and_ratio",
        ),
        (
            "INSERT INTO job (run_id, kind, ratio, available_at, created_at) VALUES ($1, 'export', 0.5, $2, $2)",
            "job_cell_has_group_and_ratio",
        ),
        (
            "INSERT INTO job (run_id, kind, group_key, ratio, available_at, created_at)
             VALUES ($1, 'cell', 'conv2d_1.w_0', 1.0, $2, $2)",
            "job_ratio_in_range",
        ),
        (
            "INSERT INTO job (run_id, kind, state, available_at, created_at) VALUES ($1, 'export', 'leased', $2, $2)",
            "job_leased_iff_lease",
        ),
        (
            "INSERT INTO job (run_id, kind, state, finished_at, available_at, created_at)
             VALUES ($1, 'export', 'done', $2, $2, $2)",
            "job_done_iff_result",
        ),
        (
            "INSERT INTO job (run_id, kind, state, finished_at, available_at, created_at)
             VALUES ($1, 'export', 'failed', $2, $2, $2)",
            "job_failed_has_error",
        ),
        (
            "INSERT INTO job (run_id, kind, state, result, available_at, created_at)
             VALUES ($1, 'export', 'done', '{}', $2, $2)",
            "job_finished_iff_final",
        ),
        (
            "INSERT INTO job (run_id, kind, available_at, created_at) VALUES ($1, 'baseline', $2, $2)",
            "job_one_baseline",
        ),
        // A probe has its chain step and its plan (0004), and nothing else has either.
        (
            "INSERT INTO job (run_id, kind, probe_step, available_at, created_at) VALUES ($1, 'probe', 1, $2, $2)",
            "job_probe_has_step_and_plan",
        ),
        (
            "INSERT INTO job (run_id, kind, plan, available_at, created_at) VALUES ($1, 'export', '{}', $2, $2)",
            "job_probe_has_step_and_plan",
        ),
    ] {
        let err = sqlx::query(sql)
            .bind(run_id)
            .bind(T0)
            .execute(&pool)
            .await
            .expect_err(sql);
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.constraint(), Some(constraint), "{sql}: {db_err}");
    }
    // A lease that no claim made (attempt and epoch still 0).
    let worker_id: i64 = sqlx::query_scalar(
        "INSERT INTO worker (name, device, registered_at, last_seen_at) VALUES ('w', 'cpu', $1, $1) RETURNING id",
    )
    .bind(T0)
    .fetch_one(&pool)
    .await
    .unwrap();
    let err = sqlx::query(
        "INSERT INTO job (run_id, kind, state, lease_owner, lease_deadline, available_at, created_at)
         VALUES ($1, 'export', 'leased', $3, $2, $2, $2)",
    )
    .bind(run_id)
    .bind(T0)
    .bind(worker_id)
    .execute(&pool)
    .await
    .expect_err("a lease without a claim");
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("job_leased_was_claimed")
    );

    // A failed run says why (0002): `status` and `results` show it.
    let err = sqlx::query("UPDATE run SET state = 'failed', finished_at = $2 WHERE id = $1")
        .bind(run_id)
        .bind(T0)
        .execute(&pool)
        .await
        .expect_err("a failed run without its error");
    assert_eq!(
        err.as_database_error().and_then(|e| e.constraint()),
        Some("run_failed_has_error")
    );

    MIGRATOR.undo(&pool, 0).await.expect("reverting every migration");
    assert!(public_tables(&pool).await.is_empty());
    assert!(enum_labels(&pool, "job_state").await.is_empty());
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, 0);
}
