//! Every migration applies to a fresh database, enforces the rules between fields, and reverts cleanly.

use sensgrid_coordinator::MIGRATOR;
use sqlx::PgPool;

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
    assert_eq!(enum_labels(&pool, "job_kind").await, ["baseline", "cell", "export"]);

    let digest = "0".repeat(64);
    sqlx::query("INSERT INTO artifact (digest, size_bytes, media_type) VALUES ($1, 1, 'application/onnx')")
        .bind(&digest)
        .execute(&pool)
        .await
        .unwrap();
    let run_id: i64 = sqlx::query_scalar(
        "INSERT INTO run (config_yaml, model_digest, dataset_digest, criterion, max_attempts)
         VALUES ('Global: {}', $1, $1, 'l1_norm', 3) RETURNING id",
    )
    .bind(&digest)
    .fetch_one(&pool)
    .await
    .unwrap();

    // float8 keeps 0.1 exactly as written.
    let ratio: f64 = sqlx::query_scalar(
        "INSERT INTO job (run_id, kind, group_key, ratio) VALUES ($1, 'cell', 'conv2d_0.w_0', 0.1) RETURNING ratio",
    )
    .bind(run_id)
    .fetch_one(&pool)
    .await
    .unwrap();
    assert_eq!(ratio, 0.1);

    // A cell without a ratio, a leased job without an owner, and a done job without a result are refused.
    for (sql, constraint) in [
        (
            "INSERT INTO job (run_id, kind, group_key) VALUES ($1, 'cell', 'conv2d_1.w_0')",
            "job_cell_has_group_and_ratio",
        ),
        (
            "INSERT INTO job (run_id, kind, state) VALUES ($1, 'baseline', 'leased')",
            "job_leased_iff_lease",
        ),
        (
            "INSERT INTO job (run_id, kind, state, finished_at) VALUES ($1, 'baseline', 'done', now())",
            "job_done_iff_result",
        ),
    ] {
        let err = sqlx::query(sql).bind(run_id).execute(&pool).await.expect_err(sql);
        let db_err = err.as_database_error().expect("a database error");
        assert_eq!(db_err.constraint(), Some(constraint), "{sql}: {db_err}");
    }

    MIGRATOR.undo(&pool, 0).await.expect("reverting every migration");
    assert!(public_tables(&pool).await.is_empty());
    assert!(enum_labels(&pool, "job_state").await.is_empty());
    let applied: i64 = sqlx::query_scalar("SELECT count(*) FROM _sqlx_migrations")
        .fetch_one(&pool)
        .await
        .unwrap();
    assert_eq!(applied, 0);
}
