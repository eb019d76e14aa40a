//! The store's rules on the embedded backend; the same rules on PostgreSQL
//! are proven by the cluster suites (`api_node_postgres.rs`, moves).

use super::*;

fn shards(dir: &std::path::Path) -> Shards {
    Shards::new(ShardOptions { embedded_dir: dir.to_path_buf(), passfile: None, connections_max: 4, tls: None })
}

fn new_item<'a>(title: &'a str, key: Option<&'a str>, now: u64) -> NewItem<'a> {
    NewItem { title, created_by: "alice", idempotency_key: key, now_unix_ms: now }
}

#[tokio::test]
async fn scopes_are_isolated_idempotent_and_fenced() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = shards(dir.path());
    let shard = "embedded:us-east-1";
    let acme = stores.scope(shard, "01ACME", 1).expect("scope");
    let globex = stores.scope(shard, "01GLOBEX", 1).expect("scope");

    let (first, replayed) = acme.create_item(&new_item("invoice", Some("k1"), 1)).await.expect("create");
    assert!(!replayed);
    let (again, replayed) = acme.create_item(&new_item("something else", Some("k1"), 2)).await.expect("retry");
    assert!(replayed);
    assert_eq!(again, first, "a retry returns the first result");
    // The same key in another tenant is another request.
    let (theirs, replayed) = globex.create_item(&new_item("order", Some("k1"), 3)).await.expect("create");
    assert!(!replayed);
    assert_ne!(theirs.id, first.id);
    assert_eq!(acme.items().await.expect("items"), vec![first.clone()]);
    assert_eq!(globex.items().await.expect("items"), vec![theirs]);

    // An expired key is a new request.
    let later = 2 + crate::limits::IDEMPOTENCY_KEY_TTL_MS;
    let (fresh, replayed) = acme.create_item(&new_item("a day later", Some("k1"), later)).await.expect("create");
    assert!(!replayed);
    assert_ne!(fresh.id, first.id);

    // A newer epoch fences older writers of that tenant only.
    let acme_new = stores.scope(shard, "01ACME", 2).expect("scope");
    acme_new.create_item(&new_item("after failover", None, later + 1)).await.expect("create at epoch 2");
    match acme.create_item(&new_item("late write", None, later + 2)).await {
        Err(ShardError::StaleEpoch { got: 1, seen: 2 }) => {}
        other => panic!("expected a stale epoch, got {other:?}"),
    }
    globex.create_item(&new_item("unaffected", None, later + 3)).await.expect("globex is still at epoch 1");

    let blank = acme_new.create_item(&new_item(" ", None, 7)).await;
    assert!(matches!(blank, Err(ShardError::Invalid { field: "title", .. })), "{blank:?}");
    let long_key = "k".repeat(129);
    let long = acme_new.create_item(&new_item("x", Some(&long_key), 7)).await;
    assert!(matches!(long, Err(ShardError::Invalid { field: "Idempotency-Key", .. })), "{long:?}");
    assert!(stores.scope("embedded:../x", "01ACME", 1).is_err(), "an endpoint is validated");
}

#[tokio::test]
async fn a_move_copies_exactly_fences_the_old_shard_and_refuses_a_late_copy() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = shards(dir.path());
    let (from, to) = ("embedded:us-1", "embedded:us-2");
    let old = stores.scope(from, "01ACME", 1).expect("scope");
    for (n, key) in [(1, Some("k1")), (2, None), (3, Some("k3"))] {
        old.create_item(&new_item(&format!("item {n}"), key, n)).await.expect("create");
    }
    let theirs = stores.scope(from, "01GLOBEX", 1).expect("scope");
    theirs.create_item(&new_item("theirs", None, 9)).await.expect("create");
    // Left on the target by an earlier, aborted move: the copy replaces it.
    let leftover = stores.scope(to, "01ACME", 1).expect("scope");
    leftover.create_item(&new_item("leftover", None, 4)).await.expect("create");

    let (report, progress) = tokio::sync::watch::channel(CopyProgress::default());
    let (source, target) = stores.copy_tenant(from, to, "01ACME", 2, &report).await.expect("copy");
    assert_eq!(source, target);
    assert_eq!(source.rows, 5, "three items and two idempotency keys; not the other tenant's, not the fence");
    let told = CopyProgress { phase: CopyPhase::Digesting, rows: 5, rows_total: Some(5) };
    assert_eq!(*progress.borrow(), told, "every row written, told");
    let again = stores.copy_tenant(from, to, "01ACME", 2, &report).await.expect("a copy is idempotent");
    assert_eq!(again, (source.clone(), target));

    // A writer still at the old epoch cannot write to the old shard now.
    match old.create_item(&new_item("late", None, 5)).await {
        Err(ShardError::StaleEpoch { got: 1, seen: 2 }) => {}
        other => panic!("expected a stale epoch, got {other:?}"),
    }
    // After the flip the tenant writes at epoch 3 on the new shard; the
    // idempotency keys came along, so a retry is not a duplicate.
    let new = stores.scope(to, "01ACME", 3).expect("scope");
    let (replayed, was_replay) = new.create_item(&new_item("retry", Some("k1"), 6)).await.expect("retry");
    assert!(was_replay);
    assert_eq!(replayed.title, "item 1");
    assert_eq!(new.items().await.expect("items").len(), 3);
    new.create_item(&new_item("after the move", None, 7)).await.expect("create at epoch 3");
    // A copy that arrives late would wipe that row: it is refused.
    match stores.copy_tenant(from, to, "01ACME", 2, &report).await {
        Err(ShardError::StaleEpoch { got: 2, seen: 3 }) => {}
        other => panic!("expected a stale epoch, got {other:?}"),
    }
    assert_eq!(new.items().await.expect("items").len(), 4);
    assert!(stores.copy_tenant(from, from, "01ACME", 2, &report).await.is_err());

    // The old copy goes; its fence stays, the other tenant's rows stay.
    assert_eq!(stores.remove_old_copy(from, "01ACME", 3).await.expect("remove"), 5);
    assert_eq!(old.digest().await.expect("digest").rows, 0);
    assert!(matches!(old.create_item(&new_item("late", None, 8)).await, Err(ShardError::StaleEpoch { .. })));
    assert_eq!(theirs.items().await.expect("items").len(), 1);
}

#[tokio::test]
async fn digests_depend_on_every_field_and_not_on_insertion_order() {
    let dir = tempfile::tempdir().expect("tempdir");
    let stores = shards(dir.path());
    let rows = |titles: &[&str]| Rows {
        items: titles
            .iter()
            .enumerate()
            .map(|(n, title)| Item {
                id: format!("id{n}"),
                title: (*title).to_owned(),
                created_by: "a".to_owned(),
                created_at_unix_ms: 1,
            })
            .collect(),
        keys: vec![],
    };
    let digest = |shard: &'static str, rows: Rows| {
        let stores = &stores;
        async move {
            let scope = stores.scope(shard, "01ACME", 1).expect("scope");
            scope
                .shard
                .replace_rows("01ACME", 1, &rows, &tokio::sync::watch::Sender::new(CopyProgress::default()))
                .await
                .expect("replace");
            scope.digest().await.expect("digest")
        }
    };
    let forward = digest("embedded:a", rows(&["x", "y:z"])).await;
    let mut reversed = rows(&["x", "y:z"]);
    reversed.items.reverse();
    assert_eq!(digest("embedded:b", reversed).await, forward);
    // The fields are length-prefixed: moving a character across a boundary changes the digest.
    assert_ne!(digest("embedded:c", rows(&["x:", "y"])).await, forward);
    assert_eq!(
        digest("embedded:d", Rows::default()).await.sha256,
        hex::encode(<sha2::Sha256 as sha2::Digest>::digest(b""))
    );
}
