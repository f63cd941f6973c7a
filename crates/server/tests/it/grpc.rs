//! The official Rust client (`qdrant-client`, gRPC only) against the real binary: collections,
//! 10k points in batches, filtered queries, scroll, snapshots, aliases, errors and API keys.
//! What is written over gRPC is read back over REST, so both APIs see one store.

use qdrant_client::qdrant::{
    Condition, CountPointsBuilder, CreateAliasBuilder, CreateCollectionBuilder, CreateFieldIndexCollectionBuilder,
    DeletePointsBuilder, Distance, FieldType, Filter, GetPointsBuilder, PointStruct, PointsIdsList, QueryPointsBuilder,
    ScrollPointsBuilder, SearchPointsBuilder, SparseVectorParamsBuilder, SparseVectorsConfigBuilder,
    UpsertPointsBuilder, Value, VectorParamsBuilder, VectorsConfigBuilder,
};
use qdrant_client::{Payload, Qdrant, QdrantError};
use serde_json::json;
use tonic::Code;

use crate::common::{Server, BACKENDS};

fn client(s: &Server, key: Option<&str>) -> Qdrant {
    let mut b = Qdrant::from_url(&format!("http://127.0.0.1:{}", s.grpc_port));
    if let Some(k) = key {
        b = b.api_key(k.to_string());
    }
    b.build().expect("client")
}

fn runtime() -> tokio::runtime::Runtime {
    tokio::runtime::Builder::new_multi_thread().worker_threads(2).enable_all().build().expect("runtime")
}

fn status_of(e: QdrantError) -> (Code, String) {
    match e {
        QdrantError::ResponseError { status } => (status.code(), status.message().to_string()),
        other => panic!("expected a gRPC status, got {other:?}"),
    }
}

fn point(i: u64) -> PointStruct {
    let mut payload = Payload::new();
    payload.insert("group", if i.is_multiple_of(10) { "ten" } else { "other" });
    payload.insert("n", i as i64);
    let x = i as f32;
    PointStruct::new(i, vec![1.0, x.sin(), x.cos(), 0.5], payload)
}

async fn lifecycle(s: &Server) {
    let c = client(s, None);
    let health = c.health_check().await.expect("health");
    assert_eq!(health.version, "1.19.0");

    c.create_collection(
        CreateCollectionBuilder::new("g").vectors_config(VectorParamsBuilder::new(4, Distance::Cosine)),
    )
    .await
    .expect("create");
    for chunk in (0..10_000u64).collect::<Vec<_>>().chunks(500) {
        let points: Vec<_> = chunk.iter().map(|i| point(*i)).collect();
        c.upsert_points(UpsertPointsBuilder::new("g", points).wait(true)).await.expect("upsert");
    }
    let n = c.count(CountPointsBuilder::new("g").exact(true)).await.expect("count");
    assert_eq!(n.result.map(|r| r.count), Some(10_000));
    // The same store over REST.
    assert_eq!(s.ok("POST", "/collections/g/points/count", Some(&json!({"exact": true})))["count"], 10_000);

    c.create_field_index(CreateFieldIndexCollectionBuilder::new("g", "group", FieldType::Keyword).wait(true))
        .await
        .expect("index");
    let ten = Filter::must([Condition::matches("group", "ten".to_string())]);
    let hits = c
        .query(
            QueryPointsBuilder::new("g")
                .query(vec![1.0, 0.0, 1.0, 0.5])
                .filter(ten.clone())
                .limit(5)
                .with_payload(true),
        )
        .await
        .expect("query");
    assert_eq!(hits.result.len(), 5);
    for h in &hits.result {
        assert_eq!(h.payload.get("group").map(Value::to_string).as_deref(), Some("\"ten\""));
    }
    // Same answer as REST, in the same order.
    let rest = s.ok(
        "POST",
        "/collections/g/points/query",
        Some(&json!({"query": [1.0, 0.0, 1.0, 0.5], "limit": 5,
                     "filter": {"must": [{"key": "group", "match": {"value": "ten"}}]}})),
    );
    let rest_ids: Vec<u64> =
        rest["points"].as_array().expect("points").iter().filter_map(|p| p["id"].as_u64()).collect();
    let grpc_ids: Vec<u64> = hits
        .result
        .iter()
        .filter_map(|p| match p.id.as_ref()?.point_id_options.as_ref()? {
            qdrant_client::qdrant::point_id::PointIdOptions::Num(n) => Some(*n),
            _ => None,
        })
        .collect();
    assert_eq!(grpc_ids, rest_ids);
    let legacy = c
        .search_points(SearchPointsBuilder::new("g", vec![1.0, 0.0, 1.0, 0.5], 5).filter(ten.clone()))
        .await
        .expect("search");
    assert_eq!(legacy.result.len(), 5);

    // Scroll pages through the filtered points exactly once.
    let mut seen = 0;
    let mut offset = None;
    loop {
        let mut b = ScrollPointsBuilder::new("g").filter(ten.clone()).limit(300);
        if let Some(o) = offset.take() {
            b = b.offset(o);
        }
        let page = c.scroll(b).await.expect("scroll");
        seen += page.result.len();
        match page.next_page_offset {
            Some(o) => offset = Some(o),
            None => break,
        }
    }
    assert_eq!(seen, 1_000);

    let got = c.get_points(GetPointsBuilder::new("g", vec![7.into()]).with_vectors(true)).await.expect("get");
    assert_eq!(got.result.len(), 1);
    c.delete_points(DeletePointsBuilder::new("g").points(PointsIdsList { ids: vec![7.into()] }).wait(true))
        .await
        .expect("delete");
    let got = c.get_points(GetPointsBuilder::new("g", vec![7.into()])).await.expect("get");
    assert!(got.result.is_empty());

    // Aliases and snapshots.
    c.create_alias(CreateAliasBuilder::new("g", "g-alias")).await.expect("alias");
    let n = c.count(CountPointsBuilder::new("g-alias").exact(true)).await.expect("count via alias");
    assert_eq!(n.result.map(|r| r.count), Some(9_999));
    let aliases = c.list_aliases().await.expect("aliases");
    assert_eq!(aliases.aliases.len(), 1);
    let snap = c.create_snapshot("g").await.expect("snapshot");
    let name = snap.snapshot_description.expect("description").name;
    let list = c.list_snapshots("g").await.expect("list");
    assert!(list.snapshot_descriptions.iter().any(|d| d.name == name));
    let rest_list = s.ok("GET", "/collections/g/snapshots", None);
    assert!(rest_list.as_array().expect("list").iter().any(|d| d["name"] == name.as_str()));
}

async fn errors(s: &Server) {
    let c = client(s, None);
    let (status, msg) = status_of(c.collection_info("missing").await.expect_err("missing collection"));
    assert_eq!(status, Code::NotFound, "{msg}");
    assert!(msg.contains("missing"), "{msg}");
    c.create_collection(
        CreateCollectionBuilder::new("e")
            .vectors_config({
                let mut v = VectorsConfigBuilder::default();
                v.add_named_vector_params("dense", VectorParamsBuilder::new(3, Distance::Dot));
                v
            })
            .sparse_vectors_config({
                let mut sp = SparseVectorsConfigBuilder::default();
                sp.add_named_vector_params("text", SparseVectorParamsBuilder::default());
                sp
            }),
    )
    .await
    .expect("create");
    let (status, _) = status_of(
        c.create_collection(
            CreateCollectionBuilder::new("e").vectors_config(VectorParamsBuilder::new(3, Distance::Dot)),
        )
        .await
        .expect_err("duplicate"),
    );
    assert_eq!(status, Code::AlreadyExists);
    let wrong =
        PointStruct::new(1, std::collections::HashMap::from([("dense".to_string(), vec![1.0, 2.0])]), Payload::new());
    let (status, msg) =
        status_of(c.upsert_points(UpsertPointsBuilder::new("e", vec![wrong]).wait(true)).await.expect_err("dim"));
    assert_eq!(status, Code::InvalidArgument);
    assert!(msg.contains("dim"), "{msg}");
    // Nothing was half-written.
    let n = c.count(CountPointsBuilder::new("e").exact(true)).await.expect("count");
    assert_eq!(n.result.map(|r| r.count), Some(0));
    // The REST server is unaffected by bad gRPC input.
    assert_eq!(s.ok("GET", "/collections/e", None)["points_count"], 0);
}

#[test]
fn official_rust_client_over_grpc() {
    for backend in BACKENDS {
        let dir = tempfile::tempdir().expect("tmp");
        let s = Server::start(&dir.path().join("storage"), backend);
        let rt = runtime();
        rt.block_on(lifecycle(&s));
        rt.block_on(errors(&s));
    }
}

#[test]
fn grpc_takes_the_same_api_keys() {
    let dir = tempfile::tempdir().expect("tmp");
    let s = Server::start_with(
        &dir.path().join("storage"),
        "sqlite",
        &[("QDRANT__SERVICE__API_KEY", "full-key"), ("QDRANT__SERVICE__READ_ONLY_API_KEY", "read-key")],
    );
    let rt = runtime();
    rt.block_on(async {
        let (status, _) = status_of(client(&s, None).list_collections().await.expect_err("no key"));
        assert_eq!(status, Code::Unauthenticated);
        let (status, _) = status_of(client(&s, Some("wrong")).list_collections().await.expect_err("wrong key"));
        assert_eq!(status, Code::Unauthenticated);
        let full = client(&s, Some("full-key"));
        full.create_collection(
            CreateCollectionBuilder::new("k").vectors_config(VectorParamsBuilder::new(2, Distance::Dot)),
        )
        .await
        .expect("create with the full key");
        let read = client(&s, Some("read-key"));
        read.list_collections().await.expect("read-only key reads");
        read.count(CountPointsBuilder::new("k")).await.expect("read-only key counts");
        let (status, _) = status_of(
            read.upsert_points(UpsertPointsBuilder::new(
                "k",
                vec![PointStruct::new(1, vec![1.0, 2.0], Payload::new())],
            ))
            .await
            .expect_err("read-only key cannot write"),
        );
        assert_eq!(status, Code::PermissionDenied);
        let (status, _) = status_of(read.delete_collection("k").await.expect_err("read-only key cannot delete"));
        assert_eq!(status, Code::PermissionDenied);
    });
}

#[test]
fn grpc_request_size_limit_is_resource_exhausted() {
    let dir = tempfile::tempdir().expect("tmp");
    let s =
        Server::start_with(&dir.path().join("storage"), "rocksdb", &[("QDRANT__SERVICE__MAX_REQUEST_SIZE_MB", "1")]);
    runtime().block_on(async {
        let c = client(&s, None);
        c.create_collection(
            CreateCollectionBuilder::new("big").vectors_config(VectorParamsBuilder::new(1024, Distance::Dot)),
        )
        .await
        .expect("create");
        // 400 × 1024 floats ≈ 1.6 MB: over the 1 MB limit.
        let points: Vec<_> = (0..400u64).map(|i| PointStruct::new(i, vec![0.5; 1024], Payload::new())).collect();
        let (status, msg) =
            status_of(c.upsert_points(UpsertPointsBuilder::new("big", points).wait(true)).await.expect_err("too big"));
        assert_eq!(status, Code::ResourceExhausted, "{msg}");
        // Under the limit still works, and nothing of the refused request was written.
        let points: Vec<_> = (0..10u64).map(|i| PointStruct::new(i, vec![0.5; 1024], Payload::new())).collect();
        c.upsert_points(UpsertPointsBuilder::new("big", points).wait(true)).await.expect("small upsert");
        let n = c.count(CountPointsBuilder::new("big").exact(true)).await.expect("count");
        assert_eq!(n.result.map(|r| r.count), Some(10));
    });
}
