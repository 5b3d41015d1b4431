//! A database created but never migrated is named as such: the person
//! reading the error learns to run `billclear migrate`, not that some
//! relation is missing.

use billclear::store::postgres::{self, PgStore};
use billclear::store::{BillerStore, StoreError};

#[tokio::test]
async fn an_unmigrated_database_says_to_run_migrate() {
    let server = std::env::var("BILLCLEAR_TEST_DATABASE_URL")
        .unwrap_or_else(|_| "postgres://postgres@127.0.0.1:5432/postgres".into());
    let name = format!("billclear_test_{}", uuid::Uuid::new_v4().simple());
    let url = postgres::create_database(&server, &name).await.unwrap();
    let store = PgStore::connect(&url, 2).await.unwrap();
    let err = store.load_billers().await.unwrap_err();
    match &err {
        StoreError::Rejected(why) => assert!(why.contains("billclear migrate"), "{why}"),
        other => panic!("expected a refusal naming the fix, got {other:?}"),
    }
    store.pool().close().await;
    postgres::drop_database(&server, &name).await.unwrap();
}
