//! Peer-to-peer traffic on the P2P port (6335): one gRPC service, `qd.p2p.Peer/Call`, whose
//! messages are MessagePack-encoded [`PeerRequest`] / [`PeerReply`] values (a tonic codec of
//! our own, so no protobuf compiler is needed; vectors travel as binary floats). Raft's messages, forwarded proposals, joins and the
//! calls of remote shards all travel through it over one HTTP/2 connection per peer.

use std::collections::HashMap;
use std::marker::PhantomData;
use std::sync::Arc;
use std::task::{Context, Poll};
use std::time::Duration;

use bytes::{Buf, BufMut};
use openraft::error::{InstallSnapshotError, RaftError};
use openraft::raft::{
    AppendEntriesRequest, AppendEntriesResponse, InstallSnapshotRequest, InstallSnapshotResponse, VoteRequest,
    VoteResponse,
};
use parking_lot::Mutex;
use qd_collection::operations::{Record, ShardHit, ShardSearch, ShardStats, UpdateOp, UpdateResult, WithSelectors};
use qd_collection::shard::ShardId;
use qd_collection::CollectionError;
use qd_core::filter::Filter;
use qd_core::json_path::JsonPath;
use qd_core::vectors::NamedVectors;
use qd_core::{Payload, PointId};
use serde::de::DeserializeOwned;
use serde::{Deserialize, Serialize};
use tonic::codec::{Codec, DecodeBuf, Decoder, EncodeBuf, Encoder};
use tonic::Status;

use crate::copied_writes::{OpCursor, OpId};
use crate::raft_types::TypeConfig;
use crate::state::{MetaOp, MetaResult, PeerId};

/// The gRPC path of the one P2P method.
pub const CALL_PATH: &str = "/qd.p2p.Peer/Call";
const SERVICE: &str = "qd.p2p.Peer";

/// A call from one peer to another.
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerRequest {
    AppendEntries(AppendEntriesRequest<TypeConfig>),
    Vote(VoteRequest<PeerId>),
    InstallSnapshot(InstallSnapshotRequest<TypeConfig>),
    /// A new peer asks to be added to the cluster (sent to any member, forwarded to the leader).
    Join {
        peer_id: PeerId,
        uri: String,
    },
    /// A metadata change proposed on a follower, for the leader to commit.
    Propose(MetaOp),
    /// Remove a peer from the voters and forget it (sent to the leader).
    RemovePeer {
        peer_id: PeerId,
    },
    /// A member restarted at another URI asks to be reached there (sent to any member,
    /// forwarded to the leader).
    MovedTo {
        peer_id: PeerId,
        uri: String,
    },
    /// Which peer answers at this URI.
    WhoAreYou,
    /// The index of the last log entry this peer applied.
    AppliedIndex,
    /// A call on this peer's replica of a shard.
    Shard {
        collection: String,
        shard: ShardId,
        call: ShardCall,
    },
}

/// The answer to a [`PeerRequest`].
#[derive(Debug, Serialize, Deserialize)]
pub enum PeerReply {
    AppendEntries(Result<AppendEntriesResponse<PeerId>, RaftError<PeerId>>),
    Vote(Result<VoteResponse<PeerId>, RaftError<PeerId>>),
    InstallSnapshot(Result<InstallSnapshotResponse<PeerId>, RaftError<PeerId, InstallSnapshotError>>),
    /// The log index the operation was committed at, and its result.
    Proposed {
        index: u64,
        result: MetaResult,
    },
    Done,
    Applied(u64),
    /// The answer to [`PeerRequest::WhoAreYou`].
    PeerId(PeerId),
    Shard(ShardReply),
    Error(WireError),
}

/// Calls of the `Shard` trait, made on a replica that lives on another peer.
#[derive(Debug, Serialize, Deserialize)]
pub enum ShardCall {
    /// A write, with the routing version of the shard its coordinator sent it by and the id
    /// it gave the write (the same for every replica).
    Update {
        op: UpdateOp,
        wait: bool,
        version: u64,
        #[serde(default)]
        op_id: Option<OpId>,
    },
    /// A write with `medium`/`strong` ordering, sent to the peer that orders the shard's
    /// writes: it sends it on to every replica, one such write at a time.
    UpdateOrdered {
        op: UpdateOp,
        wait: bool,
    },
    Search(ShardSearch),
    Retrieve {
        ids: Vec<PointId>,
        with: WithSelectors,
    },
    ScrollIds {
        from: Option<PointId>,
        filter: Option<Filter>,
        limit: usize,
    },
    /// Up to `limit` ids in order from `from`, each with a digest of the point's record (a
    /// delta transfer compares them with its own); every scrolled id is answered, `None` for
    /// one deleted between the scroll and its digest, so the page length tells where the
    /// next page starts.
    Digests {
        from: Option<PointId>,
        limit: usize,
    },
    Count {
        filter: Option<Filter>,
    },
    OrderEntries {
        key: JsonPath,
        filter: Option<Filter>,
    },
    Facet {
        key: JsonPath,
        filter: Option<Filter>,
    },
    SparseDf {
        vector: String,
        indices: Vec<u32>,
    },
    Stats,
    /// Records of `ids` (whole) for a copy into another replica, with the ids of the filter
    /// writes this replica applied after `after` (see [`crate::copied_writes`]).
    CopyBatch {
        ids: Vec<PointId>,
        after: Option<OpCursor>,
        /// For a first batch: how far back (ms) the source's log must reach for its report
        /// to be complete (the receiver's oldest write to replay, plus the time in flight).
        window_ms: u64,
    },
    /// Snapshot this peer's replica into a file a snapshot transfer then reads.
    SnapshotCreate,
    /// Up to `len` bytes of a transfer snapshot from `offset`.
    SnapshotRead {
        name: String,
        offset: u64,
        len: u64,
    },
    /// The transfer snapshot was copied (or abandoned): delete it.
    SnapshotDrop {
        name: String,
    },
}

/// A point as it travels between peers (names kept, unlike the user-facing shape).
#[derive(Debug, Serialize, Deserialize)]
pub struct WireRecord {
    pub id: PointId,
    pub payload: Option<Payload>,
    pub vector: Option<NamedVectors>,
}

impl From<Record> for WireRecord {
    fn from(r: Record) -> Self {
        WireRecord { id: r.id, payload: r.payload, vector: r.vector }
    }
}

impl From<WireRecord> for Record {
    fn from(r: WireRecord) -> Self {
        Record { id: r.id, payload: r.payload, vector: r.vector, shard_key: None, order_value: None }
    }
}

#[derive(Debug, Serialize, Deserialize)]
pub enum ShardReply {
    Updated(UpdateResult),
    Hits(Vec<ShardHit>),
    Records(Vec<WireRecord>),
    Ids(Vec<PointId>),
    Digests(Vec<(PointId, Option<u64>)>),
    Count(usize),
    OrderEntries(Vec<(f64, PointId)>),
    Facet(Vec<(serde_json::Value, usize)>),
    SparseDf(Vec<usize>, usize),
    Stats(ShardStats),
    SnapshotCreated {
        name: String,
        size: u64,
        sha256: String,
        /// The ids of the writes the snapshot holds, of those this replica remembers.
        #[serde(default)]
        held: Vec<OpId>,
    },
    /// A copied batch: its records, the ids of the state-dependent writes applied before they
    /// were read (since the request's cursor), the cursor for the next batch, and whether the
    /// report is complete (the source's log still held every write in the asked window).
    CopiedBatch {
        records: Vec<WireRecord>,
        held: Vec<OpId>,
        cursor: OpCursor,
        complete: bool,
    },
    /// Raw bytes (MessagePack bin, not an array of numbers).
    Bytes(#[serde(with = "serde_bytes")] Vec<u8>),
    Done,
}

/// An error answered by a peer, classified so the caller can report it as the peer would.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub enum WireError {
    BadRequest(String),
    NotFound(String),
    AlreadyExists(String),
    Unavailable(String),
    Internal(String),
    /// The write was routed by an older replica set than this peer applied (the shard's
    /// routing version is given): the coordinator must catch up and send it again.
    Stale(u64),
}

impl From<CollectionError> for WireError {
    fn from(e: CollectionError) -> Self {
        match e {
            CollectionError::BadRequest(m) => WireError::BadRequest(m),
            CollectionError::NotFound(m) => WireError::NotFound(m),
            CollectionError::AlreadyExists(m) => WireError::AlreadyExists(m),
            CollectionError::Unavailable(m) => WireError::Unavailable(m),
            CollectionError::ShuttingDown => WireError::Unavailable("peer is shutting down".into()),
            other => WireError::Internal(other.to_string()),
        }
    }
}

impl From<WireError> for CollectionError {
    fn from(e: WireError) -> Self {
        match e {
            WireError::BadRequest(m) => CollectionError::BadRequest(m),
            WireError::NotFound(m) => CollectionError::NotFound(m),
            WireError::AlreadyExists(m) => CollectionError::AlreadyExists(m),
            WireError::Unavailable(m) => CollectionError::Unavailable(m),
            WireError::Internal(m) => CollectionError::Internal(m),
            WireError::Stale(v) => CollectionError::Unavailable(format!(
                "the shard's replicas changed while the write was sent (routing version {v}); retry"
            )),
        }
    }
}

/// Why a call to a peer failed.
#[derive(Debug, thiserror::Error)]
pub enum P2pError {
    /// The peer could not be reached or did not answer in time.
    #[error("peer {uri} is unreachable: {message}")]
    Unreachable { uri: String, message: String },
    /// The peer answered with an error.
    #[error("{0:?}")]
    Remote(WireError),
}

impl From<P2pError> for CollectionError {
    fn from(e: P2pError) -> Self {
        match e {
            P2pError::Unreachable { .. } => CollectionError::Unavailable(e.to_string()),
            P2pError::Remote(w) => w.into(),
        }
    }
}

// --- codec ----------------------------------------------------------------------------------

/// What a peer answers to a message it cannot decode, such as a call its build does not know.
pub const UNDECODABLE: &str = "undecodable peer message";

/// Encodes `E` and decodes `D` as MessagePack (maps with field names) inside gRPC frames.
pub struct WireCodec<E, D>(PhantomData<fn(E) -> D>);

impl<E, D> Default for WireCodec<E, D> {
    fn default() -> Self {
        WireCodec(PhantomData)
    }
}

pub struct WireEncoder<E>(PhantomData<fn(E)>);
pub struct WireDecoder<D>(PhantomData<fn() -> D>);

impl<E: Serialize + Send + 'static, D: DeserializeOwned + Send + 'static> Codec for WireCodec<E, D> {
    type Encode = E;
    type Decode = D;
    type Encoder = WireEncoder<E>;
    type Decoder = WireDecoder<D>;
    fn encoder(&mut self) -> Self::Encoder {
        WireEncoder(PhantomData)
    }
    fn decoder(&mut self) -> Self::Decoder {
        WireDecoder(PhantomData)
    }
}

impl<E: Serialize> Encoder for WireEncoder<E> {
    type Item = E;
    type Error = Status;
    fn encode(&mut self, item: E, dst: &mut EncodeBuf<'_>) -> Result<(), Status> {
        let mut w = dst.writer();
        rmp_serde::encode::write_named(&mut w, &item).map_err(|e| Status::internal(format!("encoding: {e}")))
    }
}

impl<D: DeserializeOwned> Decoder for WireDecoder<D> {
    type Item = D;
    type Error = Status;
    fn decode(&mut self, src: &mut DecodeBuf<'_>) -> Result<Option<D>, Status> {
        rmp_serde::from_read(src.reader())
            .map(Some)
            .map_err(|e| Status::invalid_argument(format!("{UNDECODABLE}: {e}")))
    }
}

// --- server ---------------------------------------------------------------------------------

/// What answers peer calls (the cluster node).
pub trait PeerHandler: Send + Sync + 'static {
    fn handle(
        self: Arc<Self>,
        request: PeerRequest,
    ) -> std::pin::Pin<Box<dyn std::future::Future<Output = PeerReply> + Send>>;
}

/// The tonic service of the P2P port.
pub struct PeerService<H: PeerHandler>(pub Arc<H>);

impl<H: PeerHandler> Clone for PeerService<H> {
    fn clone(&self) -> Self {
        PeerService(self.0.clone())
    }
}

impl<H: PeerHandler> tonic::server::NamedService for PeerService<H> {
    const NAME: &'static str = SERVICE;
}

struct CallSvc<H: PeerHandler>(Arc<H>);

impl<H: PeerHandler> tonic::server::UnaryService<PeerRequest> for CallSvc<H> {
    type Response = PeerReply;
    type Future = tonic::codegen::BoxFuture<tonic::Response<PeerReply>, Status>;
    fn call(&mut self, request: tonic::Request<PeerRequest>) -> Self::Future {
        let handler = self.0.clone();
        Box::pin(async move { Ok(tonic::Response::new(handler.handle(request.into_inner()).await)) })
    }
}

impl<H: PeerHandler, B> tower::Service<http::Request<B>> for PeerService<H>
where
    B: tonic::codegen::Body + Send + 'static,
    B::Error: Into<tonic::codegen::StdError> + Send + 'static,
{
    type Response = http::Response<tonic::body::Body>;
    type Error = std::convert::Infallible;
    type Future = tonic::codegen::BoxFuture<Self::Response, Self::Error>;

    fn poll_ready(&mut self, _cx: &mut Context<'_>) -> Poll<Result<(), Self::Error>> {
        Poll::Ready(Ok(()))
    }

    fn call(&mut self, req: http::Request<B>) -> Self::Future {
        if req.uri().path() != CALL_PATH {
            return Box::pin(async { Ok(Status::unimplemented("unknown P2P method").into_http()) });
        }
        let svc = CallSvc(self.0.clone());
        Box::pin(async move {
            let mut grpc = tonic::server::Grpc::new(WireCodec::<PeerReply, PeerRequest>::default())
                .apply_max_message_size_config(Some(MAX_MESSAGE), Some(MAX_MESSAGE));
            Ok(grpc.unary(svc, req).await)
        })
    }
}

/// The largest P2P message (a batch of points with their vectors).
const MAX_MESSAGE: usize = 512 * 1024 * 1024;

// --- client ---------------------------------------------------------------------------------

/// The current time in RFC 3339 (UTC, microseconds), as Qdrant reports times.
fn chrono_now() -> String {
    chrono::Utc::now().to_rfc3339_opts(chrono::SecondsFormat::Micros, true)
}

/// Connections to peers by URI, opened on first use and kept.
pub struct PeerClients {
    channels: Mutex<HashMap<String, tonic::transport::Channel>>,
    failures: Mutex<std::collections::BTreeMap<String, SendFailures>>,
    /// P2P TLS: peers are reached at `https://` URIs only, through this connector.
    tls: Option<tokio_rustls::TlsConnector>,
}

/// Calls to one peer that got no answer (`GET /cluster`'s `message_send_failures`).
#[derive(Debug, Clone, Default, Serialize)]
pub struct SendFailures {
    pub count: u64,
    pub latest_error: Option<String>,
    /// RFC 3339.
    pub latest_error_timestamp: Option<String>,
}

impl PeerClients {
    pub fn new(tls: Option<tokio_rustls::TlsConnector>) -> Self {
        PeerClients { channels: Default::default(), failures: Default::default(), tls }
    }

    fn channel(&self, uri: &str) -> Result<tonic::transport::Channel, P2pError> {
        let mut channels = self.channels.lock();
        if let Some(c) = channels.get(uri) {
            return Ok(c.clone());
        }
        if let Some(problem) = crate::p2p_tls::uri_problem(uri, self.tls.is_some()) {
            return Err(P2pError::Unreachable { uri: uri.into(), message: problem });
        }
        // tonic refuses an https:// endpoint unless its own TLS (which cannot reload the
        // certificate) is configured, so with P2P TLS the channel gets the URI's http:// form
        // and the connector below does the TLS.
        let bad = |e: String| P2pError::Unreachable { uri: uri.into(), message: format!("bad URI: {e}") };
        let mut dialed = http::Uri::try_from(uri).map_err(|e| bad(e.to_string()))?.into_parts();
        if self.tls.is_some() {
            dialed.scheme = Some(http::uri::Scheme::HTTP);
        }
        let dialed = http::Uri::from_parts(dialed).map_err(|e| bad(e.to_string()))?;
        let endpoint = tonic::transport::Endpoint::from(dialed)
            .connect_timeout(Duration::from_secs(2))
            .tcp_nodelay(true)
            .http2_keep_alive_interval(Duration::from_secs(10))
            .keep_alive_timeout(Duration::from_secs(5));
        let channel = match &self.tls {
            Some(tls) => endpoint.connect_with_connector_lazy(crate::p2p_tls::TlsConnect(tls.clone())),
            None => endpoint.connect_lazy(),
        };
        channels.insert(uri.to_string(), channel.clone());
        Ok(channel)
    }

    /// Calls that got no answer, by peer URI.
    pub fn failures(&self) -> std::collections::BTreeMap<String, SendFailures> {
        self.failures.lock().clone()
    }

    /// Send one call to the peer at `uri`, waiting at most `timeout` for its answer.
    pub async fn call(&self, uri: &str, request: PeerRequest, timeout: Duration) -> Result<PeerReply, P2pError> {
        let result = self.send(uri, request, timeout).await;
        if let Err(P2pError::Unreachable { message, .. }) = &result {
            let mut failures = self.failures.lock();
            let f = failures.entry(uri.to_string()).or_default();
            f.count += 1;
            f.latest_error = Some(message.clone());
            f.latest_error_timestamp = Some(chrono_now());
        }
        result
    }

    async fn send(&self, uri: &str, request: PeerRequest, timeout: Duration) -> Result<PeerReply, P2pError> {
        let channel = self.channel(uri)?;
        let unreachable = |message: String| P2pError::Unreachable { uri: uri.to_string(), message };
        let mut grpc = tonic::client::Grpc::new(channel)
            .max_decoding_message_size(MAX_MESSAGE)
            .max_encoding_message_size(MAX_MESSAGE);
        let call = async {
            grpc.ready().await.map_err(|e| unreachable(e.to_string()))?;
            let path = http::uri::PathAndQuery::from_static(CALL_PATH);
            grpc.unary(tonic::Request::new(request), path, WireCodec::<PeerRequest, PeerReply>::default())
                .await
                .map_err(|s| unreachable(format!("{}: {}", s.code(), s.message())))
        };
        match tokio::time::timeout(timeout, call).await {
            Err(_) => Err(unreachable(format!("no answer within {timeout:?}"))),
            Ok(Err(e)) => Err(e),
            Ok(Ok(response)) => match response.into_inner() {
                PeerReply::Error(w) => Err(P2pError::Remote(w)),
                reply => Ok(reply),
            },
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use qd_collection::operations::{PointInsert, PointSelection, ShardQuery};
    use qd_core::vectors::{MultiDenseVector, SparseVector, Vector};

    fn roundtrip<T: Serialize + DeserializeOwned>(v: &T) -> T {
        let bytes = rmp_serde::to_vec_named(v).expect("encodes");
        rmp_serde::from_slice(&bytes).expect("decodes")
    }

    #[test]
    fn timestamps_are_rfc3339() {
        let t = chrono_now();
        assert_eq!(t.len(), "2026-12-06T13:30:00.000000Z".len(), "{t}");
        assert!(t.starts_with("20") && t.ends_with('Z') && &t[10..11] == "T", "{t}");
    }

    #[test]
    fn consensus_entries_survive_the_wire() {
        let create: qd_core::config::CreateCollection = serde_json::from_value(serde_json::json!({
            "vectors": {"dense": {"size": 4, "distance": "Cosine", "on_disk": true,
                                  "quantization_config": {"scalar": {"type": "int8", "quantile": 0.99}}},
                        "colbert": {"size": 2, "distance": "Dot", "multivector_config": {"comparator": "max_sim"}}},
            "sparse_vectors": {"text": {"modifier": "idf"}},
            "shard_number": 3, "replication_factor": 2,
            "hnsw_config": {"m": 8}, "metadata": {"team": "a", "n": [1, 2.5]}
        }))
        .expect("parses");
        let config = create.into_config(&Default::default()).expect("valid");
        let op = MetaOp::CreateCollection {
            name: "c".into(),
            config: Box::new(config.clone()),
            created_at: "t".into(),
            placement: std::collections::BTreeMap::from([(0, vec![1, 2])]),
        };
        match roundtrip(&op) {
            MetaOp::CreateCollection { config: back, .. } => {
                assert_eq!(serde_json::to_value(&*back).expect("json"), serde_json::to_value(&config).expect("json"))
            }
            other => panic!("unexpected {other:?}"),
        }
    }

    #[test]
    fn shard_calls_survive_the_wire() {
        let vectors = NamedVectors::from([
            ("".to_string(), Vector::Dense(vec![0.5, -1.0])),
            ("s".to_string(), Vector::Sparse(SparseVector::new(vec![3, 1], vec![1.0, 2.0]).expect("valid"))),
            ("m".to_string(), Vector::Multi(MultiDenseVector::new(vec![vec![1.0, 2.0], vec![3.0, 4.0]]).expect("ok"))),
        ]);
        let payload: Payload = serde_json::from_value(serde_json::json!({"a": [1, "x", {"b": 2.5}]})).expect("map");
        let op = UpdateOp::Upsert(vec![PointInsert {
            id: PointId::Num(7),
            vectors: vectors.clone(),
            payload: Some(payload),
        }]);
        let call = ShardCall::Update { op, wait: true, version: 3, op_id: Some(11) };
        match roundtrip(&call) {
            ShardCall::Update { op: UpdateOp::Upsert(points), wait: true, version: 3, op_id: Some(11) } => {
                assert_eq!(points[0].vectors, vectors);
                assert_eq!(points[0].id, PointId::Num(7));
            }
            other => panic!("unexpected {other:?}"),
        }
        let filter: Filter = serde_json::from_value(serde_json::json!({
            "must": [{"key": "city", "match": {"any": ["a", "b"]}}, {"key": "t", "range": {"gte": "2024-01-01T00:00:00Z"}}],
            "must_not": [{"has_id": [1, "6e7b3b36-3a4f-4a0e-8c4e-1d5f2b8f9a10"]}]
        }))
        .expect("filter");
        let del = ShardCall::Update {
            op: UpdateOp::Delete(PointSelection::Filter(filter.clone())),
            wait: false,
            version: 0,
            op_id: None,
        };
        match roundtrip(&del) {
            ShardCall::Update { op: UpdateOp::Delete(PointSelection::Filter(f)), .. } => assert_eq!(f, filter),
            other => panic!("unexpected {other:?}"),
        }
        let search = ShardSearch {
            vector_name: "".into(),
            query: ShardQuery::Nearest(Vector::Dense(vec![1.0, 0.0])),
            filter: Some(filter),
            top: 10,
            threshold: Some(0.25),
            settings: Default::default(),
        };
        let back = roundtrip(&ShardCall::Search(search.clone()));
        assert_eq!(format!("{back:?}"), format!("{:?}", ShardCall::Search(search)));
    }
}
