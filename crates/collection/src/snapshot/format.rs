//! The archive format (see docs/snapshot-format.md): a POSIX tar with `manifest.json` first,
//! data files in the middle, and `checksums.json` last. Written and read in one streaming pass:
//! memory stays bounded by one chunk, whatever the collection's size.

use std::cell::Cell;
use std::collections::BTreeMap;
use std::io::{self, BufReader, Read, Write};
use std::sync::Arc;

use qd_storage::Table;
use serde::{Deserialize, Serialize};
use serde_json::Value;
use sha2::{Digest, Sha256};

use crate::error::{CollectionError, Result};

/// Version of the snapshot format this build writes. It reads every version up to this one.
/// 1: per-file sha256 in `checksums.json`; 2: per-file CRC-32C (the whole archive keeps its
/// sha256), which halves the hashing work of creating and of checking a snapshot.
pub const FORMAT_VERSION: u32 = 2;
/// `format` of a collection snapshot's manifest.
pub const COLLECTION_FORMAT: &str = "qdrant-rs/collection-snapshot";
/// `format` of a full-storage snapshot's manifest.
pub const FULL_FORMAT: &str = "qdrant-rs/full-snapshot";
pub const MANIFEST: &str = "manifest.json";
pub const CHECKSUMS: &str = "checksums.json";
/// Data files are cut at about this size (a record never spans two files).
pub const CHUNK_BYTES: usize = 8 << 20;
/// Largest key or value a reader accepts (guards memory against a corrupted length field).
pub const MAX_FIELD_BYTES: u64 = 256 << 20;
/// Largest manifest or checksums file a reader accepts.
const MAX_JSON_BYTES: u64 = 64 << 20;

/// One-byte tag of a table in a data file. New tables get new tags; old tags never change.
pub fn table_tag(t: Table) -> u8 {
    match t {
        Table::Meta => 1,
        Table::Points => 2,
        Table::Index => 3,
    }
}

pub fn tag_table(tag: u8) -> Option<Table> {
    match tag {
        1 => Some(Table::Meta),
        2 => Some(Table::Points),
        3 => Some(Table::Index),
        _ => None,
    }
}

/// Path of the `seq`-th data file of shard `shard`.
pub fn chunk_path(shard: u32, seq: u32) -> String {
    format!("shards/{shard}/{seq:06}.kv")
}

/// Shard id of a data file path, if it is one.
pub fn parse_chunk_path(path: &str) -> Option<u32> {
    let rest = path.strip_prefix("shards/")?;
    let (sid, file) = rest.split_once('/')?;
    let seq = file.strip_suffix(".kv")?;
    if seq.len() != 6 || !seq.bytes().all(|b| b.is_ascii_digit()) {
        return None;
    }
    sid.parse().ok()
}

/// First entry of a collection snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct CollectionManifest {
    pub format: String,
    pub format_version: u32,
    /// Name of the collection the snapshot was taken from (a restore may use another name).
    pub collection: String,
    /// When the collection was created.
    pub created_at: String,
    /// When the snapshot was taken (RFC 3339, UTC).
    pub snapshot_created_at: String,
    /// The collection's config, as the REST API shows it.
    pub config: Value,
    /// Everything else the catalog records about the collection (payload index declarations,
    /// shard keys...), as stored; `name` and `dir` are left out (a restore chooses them).
    #[serde(default)]
    pub catalog_entry: Option<Value>,
    /// Number of shard databases in the snapshot.
    pub shard_number: u32,
    /// Their ids (`0..shard_number` with automatic sharding; the ids the shard keys own with
    /// custom sharding). Data files are named by these ids.
    pub shard_ids: Vec<u32>,
    /// Backend the snapshot was taken from (information only: any backend restores it).
    pub source_backend: String,
    /// Version of the software that wrote the snapshot.
    pub software_version: String,
    /// Table name by tag, as used in the data files.
    pub tables: BTreeMap<u8, String>,
}

/// First entry of a full-storage snapshot.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FullManifest {
    pub format: String,
    pub format_version: u32,
    pub snapshot_created_at: String,
    /// Collection names; the i-th is stored as `collections/<i>.snapshot`.
    pub collections: Vec<String>,
    /// alias -> collection.
    pub aliases: BTreeMap<String, String>,
    pub software_version: String,
}

/// One file of the archive as `checksums.json` lists it: with its sha256 (format 1) or its
/// CRC-32C (format 2 on), in hex.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct FileSum {
    pub path: String,
    pub size: u64,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub sha256: String,
    #[serde(default, skip_serializing_if = "String::is_empty")]
    pub crc32c: String,
    /// Records in a data file.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub records: Option<u64>,
}

/// Record counts of one shard, by table name.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct ShardSum {
    pub shard_id: u32,
    pub records: BTreeMap<String, u64>,
}

/// Last entry: a checksum of every other entry, in archive order.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Checksums {
    pub files: Vec<FileSum>,
    #[serde(default)]
    pub shards: Vec<ShardSum>,
}

pub fn hex(bytes: &[u8]) -> String {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        s.push(DIGITS[(b >> 4) as usize] as char);
        s.push(DIGITS[(b & 15) as usize] as char);
    }
    s
}

pub fn sha256_hex(bytes: &[u8]) -> String {
    hex(&Sha256::digest(bytes))
}

/// The per-file checksum of a format version.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum FileHash {
    Sha256,
    Crc32c,
}

impl FileHash {
    pub fn of_version(version: u64) -> FileHash {
        if version <= 1 {
            FileHash::Sha256
        } else {
            FileHash::Crc32c
        }
    }

    fn start(self) -> FileHasher {
        match self {
            FileHash::Sha256 => FileHasher::Sha256(Box::default()),
            FileHash::Crc32c => FileHasher::Crc32c(0),
        }
    }

    fn digest(self, bytes: &[u8]) -> String {
        let mut h = self.start();
        h.update(bytes);
        h.finish()
    }

    /// A `FileSum` carrying `sum` in the field of this kind.
    fn sum(self, path: String, size: u64, sum: String, records: Option<u64>) -> FileSum {
        let (sha256, crc32c) = match self {
            FileHash::Sha256 => (sum, String::new()),
            FileHash::Crc32c => (String::new(), sum),
        };
        FileSum { path, size, sha256, crc32c, records }
    }
}

/// A running per-file checksum.
enum FileHasher {
    Sha256(Box<Sha256>),
    Crc32c(u32),
}

impl FileHasher {
    fn update(&mut self, bytes: &[u8]) {
        match self {
            FileHasher::Sha256(h) => h.update(bytes),
            FileHasher::Crc32c(c) => *c = crc32c::crc32c_append(*c, bytes),
        }
    }

    fn finish(self) -> String {
        match self {
            FileHasher::Sha256(h) => hex(&h.finalize()),
            FileHasher::Crc32c(c) => hex(&c.to_be_bytes()),
        }
    }
}

/// Counts what is read through it and computes its per-file checksum.
struct FileReader<R> {
    inner: R,
    hasher: FileHasher,
    bytes: u64,
}

impl<R: Read> FileReader<R> {
    /// Read to the end (so the checksum covers everything), then return the count and sum.
    fn finish(mut self) -> io::Result<(u64, String)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.bytes, self.hasher.finish()))
    }
}

impl<R: Read> Read for FileReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        self.hasher.update(&buf[..n]);
        self.bytes += n as u64;
        Ok(n)
    }
}

/// A snapshot that cannot be used: always the client's input, so a 400.
pub fn invalid(msg: impl std::fmt::Display) -> CollectionError {
    CollectionError::BadRequest(format!("Invalid snapshot: {msg}"))
}

/// Counts and optionally hashes what is read through it.
pub struct HashingReader<R> {
    inner: R,
    hasher: Option<Sha256>,
    bytes: u64,
}

impl<R: Read> HashingReader<R> {
    pub fn new(inner: R, hash: bool) -> Self {
        HashingReader { inner, hasher: hash.then(Sha256::new), bytes: 0 }
    }
    pub fn bytes(&self) -> u64 {
        self.bytes
    }
    /// Read to the end (so the hash covers everything), then return the count and hash.
    pub fn finish(mut self) -> io::Result<(u64, Option<String>)> {
        io::copy(&mut self, &mut io::sink())?;
        Ok((self.bytes, self.hasher.map(|h| hex(&h.finalize()))))
    }
}

impl<R: Read> Read for HashingReader<R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let n = self.inner.read(buf)?;
        if let Some(h) = &mut self.hasher {
            h.update(&buf[..n]);
        }
        self.bytes += n as u64;
        Ok(n)
    }
}

/// Appends one framed record: `u8 tag, u32 key len, key, u32 value len, value` (LE).
pub fn push_record(buf: &mut Vec<u8>, table: Table, key: &[u8], value: &[u8]) {
    buf.reserve(9 + key.len() + value.len());
    buf.push(table_tag(table));
    buf.extend_from_slice(&(key.len() as u32).to_le_bytes());
    buf.extend_from_slice(key);
    buf.extend_from_slice(&(value.len() as u32).to_le_bytes());
    buf.extend_from_slice(value);
}

/// Reads framed records until the end of `r`; calls `f(table, key, value)` for each.
/// Returns the number of records.
pub fn read_records(
    r: &mut dyn Read,
    path: &str,
    f: &mut dyn FnMut(Table, Vec<u8>, Vec<u8>) -> Result<()>,
) -> Result<u64> {
    let mut r = BufReader::with_capacity(256 << 10, r);
    let mut n = 0u64;
    loop {
        let mut tag = [0u8; 1];
        match r.read(&mut tag) {
            Ok(0) => return Ok(n),
            Ok(_) => {}
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) => return Err(invalid(format!("{path}: {e}"))),
        }
        let table = tag_table(tag[0]).ok_or_else(|| {
            invalid(format!("{path}: record {n} has unknown table tag {} (snapshot from a newer version?)", tag[0]))
        })?;
        let key = read_field(&mut r, path, n)?;
        let value = read_field(&mut r, path, n)?;
        f(table, key, value)?;
        n += 1;
    }
}

fn read_field(r: &mut impl Read, path: &str, n: u64) -> Result<Vec<u8>> {
    let mut len = [0u8; 4];
    r.read_exact(&mut len).map_err(|e| invalid(format!("{path}: record {n} is cut short: {e}")))?;
    let len = u32::from_le_bytes(len) as u64;
    if len > MAX_FIELD_BYTES {
        return Err(invalid(format!("{path}: record {n} claims {len} bytes (damaged)")));
    }
    let mut out = Vec::with_capacity(len.min(1 << 20) as usize);
    let got = r.take(len).read_to_end(&mut out).map_err(|e| invalid(format!("{path}: record {n}: {e}")))?;
    if got as u64 != len {
        return Err(invalid(format!("{path}: record {n} is cut short")));
    }
    Ok(out)
}

/// What the hashing thread of an [`ArchiveWriter`] receives, in archive order.
enum HashMsg {
    /// Bytes that belong to no file (headers, padding, the end of the archive).
    Raw(Vec<u8>),
    /// A whole file's content.
    File(Arc<Vec<u8>>),
    /// Part of a streamed file, ended by `EndFile`.
    Part(Vec<u8>),
    EndFile,
    /// Reply with the per-file checksums so far (every earlier message is hashed by then).
    Sums(std::sync::mpsc::SyncSender<Vec<String>>),
}

/// Writes a ustar archive entry by entry. The checksum of every file and the sha256 of the
/// whole archive are computed on a second thread while the caller produces the next data (the
/// two run in parallel; at most a few chunks are in flight).
pub struct ArchiveWriter<W: Write> {
    out: W,
    bytes: u64,
    mtime: u64,
    /// `(path, size, records)` of each file written; their checksums come from the hashing
    /// thread at the end.
    files: Vec<(String, u64, Option<u64>)>,
    tx: Option<std::sync::mpsc::SyncSender<HashMsg>>,
    hasher: Option<std::thread::JoinHandle<(String, Vec<String>)>>,
    file_hash: FileHash,
}

fn hash_thread(rx: std::sync::mpsc::Receiver<HashMsg>, kind: FileHash) -> (String, Vec<String>) {
    let mut whole = Sha256::new();
    let mut file: Option<FileHasher> = None;
    let mut sums = Vec::new();
    for m in rx {
        match m {
            HashMsg::Raw(b) => whole.update(&b),
            HashMsg::File(d) => {
                whole.update(d.as_slice());
                sums.push(kind.digest(d.as_slice()));
            }
            HashMsg::Part(b) => {
                whole.update(&b);
                file.get_or_insert_with(|| kind.start()).update(&b);
            }
            HashMsg::EndFile => sums.push(file.take().unwrap_or_else(|| kind.start()).finish()),
            HashMsg::Sums(reply) => {
                let _ = reply.send(sums.clone());
            }
        }
    }
    (hex(&whole.finalize()), sums)
}

fn hasher_gone() -> io::Error {
    io::Error::other("snapshot hashing thread stopped")
}

impl<W: Write> ArchiveWriter<W> {
    /// A writer of the current format ([`FORMAT_VERSION`]).
    pub fn new(out: W, mtime: u64) -> Self {
        Self::with_file_hash(out, mtime, FileHash::of_version(FORMAT_VERSION as u64))
    }

    /// A writer whose `checksums.json` uses `file_hash` (older formats, for tests and tools).
    pub fn with_file_hash(out: W, mtime: u64, file_hash: FileHash) -> Self {
        let (tx, rx) = std::sync::mpsc::sync_channel(4);
        let hasher =
            std::thread::Builder::new().name("snapshot-hash".into()).spawn(move || hash_thread(rx, file_hash)).ok();
        ArchiveWriter { out, bytes: 0, mtime, files: Vec::new(), tx: Some(tx), hasher, file_hash }
    }

    fn send(&self, m: HashMsg) -> io::Result<()> {
        self.tx.as_ref().ok_or_else(hasher_gone)?.send(m).map_err(|_| hasher_gone())
    }

    fn raw(&mut self, bytes: Vec<u8>) -> io::Result<()> {
        self.out.write_all(&bytes)?;
        self.bytes += bytes.len() as u64;
        self.send(HashMsg::Raw(bytes))
    }

    fn header(&mut self, path: &str, size: u64) -> io::Result<()> {
        let mut h = tar::Header::new_ustar();
        h.set_path(path)?;
        h.set_size(size);
        h.set_mode(0o644);
        h.set_mtime(self.mtime);
        h.set_entry_type(tar::EntryType::Regular);
        h.set_cksum();
        self.raw(h.as_bytes().to_vec())
    }

    fn padding(&mut self, size: u64) -> io::Result<()> {
        let pad = ((512 - size % 512) % 512) as usize;
        if pad > 0 {
            self.raw(vec![0u8; pad])?;
        }
        Ok(())
    }

    /// Bytes written so far.
    pub fn bytes(&mut self) -> u64 {
        self.bytes
    }

    pub fn add(&mut self, path: &str, data: &[u8], records: Option<u64>) -> io::Result<()> {
        self.add_owned(path, data.to_vec(), records)
    }

    /// Add a file whose content is handed over (no copy: the hashing thread reads it too).
    pub fn add_owned(&mut self, path: &str, data: Vec<u8>, records: Option<u64>) -> io::Result<()> {
        let size = data.len() as u64;
        self.header(path, size)?;
        let data = Arc::new(data);
        self.out.write_all(data.as_slice())?;
        self.bytes += size;
        self.send(HashMsg::File(data))?;
        self.padding(size)?;
        self.files.push((path.to_string(), size, records));
        Ok(())
    }

    /// Add a file of known `size` streamed from `r` (a nested snapshot).
    pub fn add_reader(&mut self, path: &str, size: u64, r: impl Read) -> io::Result<()> {
        self.header(path, size)?;
        let mut r = r.take(size);
        let mut got = 0u64;
        loop {
            let mut buf = vec![0u8; 1 << 20];
            let n = r.read(&mut buf)?;
            if n == 0 {
                break;
            }
            buf.truncate(n);
            self.out.write_all(&buf)?;
            self.bytes += n as u64;
            got += n as u64;
            self.send(HashMsg::Part(buf))?;
        }
        if got != size {
            return Err(io::Error::new(io::ErrorKind::UnexpectedEof, format!("{path}: file changed while archived")));
        }
        self.send(HashMsg::EndFile)?;
        self.padding(size)?;
        self.files.push((path.to_string(), size, None));
        Ok(())
    }

    /// Write `checksums.json` and the end of the archive. Returns the writer, the archive's
    /// size and its sha256.
    pub fn finish(mut self, shards: Vec<ShardSum>) -> io::Result<(W, u64, String)> {
        let (reply_tx, reply_rx) = std::sync::mpsc::sync_channel(1);
        self.send(HashMsg::Sums(reply_tx))?;
        let file_sums = reply_rx.recv().map_err(|_| hasher_gone())?;
        if file_sums.len() != self.files.len() {
            return Err(hasher_gone());
        }
        let kind = self.file_hash;
        let files = std::mem::take(&mut self.files)
            .into_iter()
            .zip(file_sums)
            .map(|((path, size, records), sum)| kind.sum(path, size, sum, records))
            .collect();
        let sums = Checksums { files, shards };
        let json = serde_json::to_vec_pretty(&sums).map_err(io::Error::other)?;
        let size = json.len() as u64;
        self.header(CHECKSUMS, size)?;
        self.raw(json)?;
        self.padding(size)?;
        // End of archive: two zero blocks.
        self.raw(vec![0u8; 1024])?;
        self.out.flush()?;
        self.tx.take();
        let (whole, _) = self.hasher.take().ok_or_else(hasher_gone)?.join().map_err(|_| hasher_gone())?;
        Ok((self.out, self.bytes, whole))
    }
}

/// What reading a whole archive found.
pub struct ReadSummary {
    pub checksums: Checksums,
    /// Size of the archive in bytes.
    pub size: u64,
    /// sha256 of the whole archive, when asked for.
    pub sha256: Option<String>,
}

/// Receives the entries of an archive as [`read_archive`] reads them.
pub trait ArchiveVisitor {
    /// The first entry (which must be `manifest.json`), parsed as JSON.
    fn manifest(&mut self, manifest: Value) -> Result<()>;
    /// A data entry: read none, some or all of it (the rest is read and hashed anyway); return
    /// its record count if it counted them.
    fn file(&mut self, path: &str, data: &mut dyn Read) -> Result<Option<u64>>;
}

/// Counts bytes read into a shared cell (for progress reports).
struct Counting<'a, R> {
    inner: R,
    n: &'a Cell<u64>,
}

impl<R: Read> Read for Counting<'_, R> {
    fn read(&mut self, buf: &mut [u8]) -> io::Result<usize> {
        let k = self.inner.read(buf)?;
        self.n.set(self.n.get() + k as u64);
        Ok(k)
    }
}

/// Read an archive in one pass, handing its entries to `visitor`. Every file's size and
/// checksum (the kind its manifest's `format_version` uses) is compared with `checksums.json`,
/// which must come last; with `whole_hash`, the sha256 of the whole archive is computed too.
pub fn read_archive(
    source: &mut dyn Read,
    whole_hash: bool,
    visitor: &mut dyn ArchiveVisitor,
    progress: &mut dyn FnMut(u64),
) -> Result<ReadSummary> {
    let counter = Cell::new(0u64);
    let source = Counting { inner: source, n: &counter };
    let base = HashingReader::new(BufReader::with_capacity(1 << 20, source), whole_hash);
    let mut archive = tar::Archive::new(base);
    let mut seen: Vec<FileSum> = Vec::new();
    let mut checksums: Option<Checksums> = None;
    let mut kind = FileHash::of_version(FORMAT_VERSION as u64);
    {
        let entries = archive.entries().map_err(|e| invalid(format!("not a tar archive: {e}")))?;
        for (i, entry) in entries.enumerate() {
            let mut entry = entry.map_err(|e| invalid(format!("damaged or truncated archive: {e}")))?;
            let path =
                entry.path().map_err(|e| invalid(format!("bad entry name: {e}")))?.to_string_lossy().into_owned();
            if checksums.is_some() {
                return Err(invalid(format!("unexpected entry {path:?} after {CHECKSUMS}")));
            }
            let size = entry.header().size().map_err(|e| invalid(format!("{path}: bad size: {e}")))?;
            if i == 0 {
                if path != MANIFEST {
                    return Err(not_ours(&path));
                }
                let bytes = read_json_entry(&mut entry, &path, size)?;
                let v: Value =
                    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{MANIFEST} is not JSON: {e}")))?;
                // The visitor checks the version; until it has, any value just picks a hash.
                kind = FileHash::of_version(v.get("format_version").and_then(Value::as_u64).unwrap_or(1));
                seen.push(kind.sum(path, size, kind.digest(&bytes), None));
                visitor.manifest(v)?;
                continue;
            }
            if path == CHECKSUMS {
                let bytes = read_json_entry(&mut entry, &path, size)?;
                checksums = Some(
                    serde_json::from_slice(&bytes).map_err(|e| invalid(format!("{CHECKSUMS} is unreadable: {e}")))?,
                );
                continue;
            }
            if !entry.header().entry_type().is_file() {
                return Err(invalid(format!("entry {path:?} is not a regular file")));
            }
            let mut fr = FileReader { inner: &mut entry, hasher: kind.start(), bytes: 0 };
            let records = visitor.file(&path, &mut fr)?;
            let (got, sum) = fr.finish().map_err(|e| invalid(format!("{path}: {e}")))?;
            if got != size {
                return Err(invalid(format!("{path}: truncated ({got} of {size} bytes)")));
            }
            seen.push(kind.sum(path, size, sum, records));
            progress(counter.get());
        }
    }
    let checksums =
        checksums.ok_or_else(|| invalid(format!("archive is truncated: {CHECKSUMS} (the last entry) is missing")))?;
    if seen.is_empty() {
        return Err(invalid("empty archive"));
    }
    if checksums.files.len() != seen.len() {
        return Err(invalid(format!(
            "{CHECKSUMS} lists {} files, the archive holds {}",
            checksums.files.len(),
            seen.len()
        )));
    }
    for (want, got) in checksums.files.iter().zip(&seen) {
        if want.path != got.path || want.size != got.size {
            return Err(invalid(format!(
                "file {:?} ({} bytes) found where {CHECKSUMS} lists {:?} ({} bytes)",
                got.path, got.size, want.path, want.size
            )));
        }
        if want.sha256 != got.sha256 || want.crc32c != got.crc32c {
            return Err(invalid(format!("checksum mismatch in {}: the file is damaged", got.path)));
        }
        if let (Some(a), Some(b)) = (want.records, got.records) {
            if a != b {
                return Err(invalid(format!("{}: {b} records where {a} were written", got.path)));
            }
        }
    }
    let base = archive.into_inner();
    let (size, sha256) = base.finish().map_err(|e| invalid(format!("reading the end of the archive: {e}")))?;
    Ok(ReadSummary { checksums, size, sha256 })
}

fn read_json_entry(entry: &mut dyn Read, path: &str, size: u64) -> Result<Vec<u8>> {
    if size > MAX_JSON_BYTES {
        return Err(invalid(format!("{path} is implausibly large ({size} bytes)")));
    }
    let mut bytes = Vec::with_capacity(size as usize);
    entry.take(size).read_to_end(&mut bytes).map_err(|e| invalid(format!("{path}: {e}")))?;
    if bytes.len() as u64 != size {
        return Err(invalid(format!("{path} is truncated")));
    }
    Ok(bytes)
}

fn not_ours(first: &str) -> CollectionError {
    if first.ends_with("config.json") || first.contains("segments") || first.starts_with("0/") {
        invalid(format!(
            "this looks like a snapshot written by Qdrant itself (first entry {first:?}); this server reads \
             its own snapshot format only (see docs/snapshot-format.md)"
        ))
    } else {
        invalid(format!("first entry is {first:?}, expected {MANIFEST}: not a snapshot of this server"))
    }
}

/// Check `format` and `format_version` of a manifest before reading anything else from it.
pub fn check_format(v: &Value, expected: &str) -> Result<()> {
    let format = v.get("format").and_then(Value::as_str).unwrap_or("");
    let version = v.get("format_version").and_then(Value::as_u64);
    let Some(version) = version else {
        return Err(invalid(format!("{MANIFEST} has no format_version")));
    };
    if version == 0 || version > FORMAT_VERSION as u64 {
        return Err(invalid(format!(
            "incompatible snapshot format version {version}: this server reads versions 1 to {FORMAT_VERSION}"
        )));
    }
    if format != expected {
        let what = match format {
            COLLECTION_FORMAT => "a collection snapshot",
            FULL_FORMAT => "a full-storage snapshot",
            _ => "not a snapshot of this server",
        };
        return Err(invalid(format!("expected {}, this is {what} (format {format:?})", describe(expected))));
    }
    Ok(())
}

fn describe(format: &str) -> &'static str {
    match format {
        FULL_FORMAT => "a full-storage snapshot",
        _ => "a collection snapshot",
    }
}

/// Format of a manifest (for tools that accept either kind).
pub fn manifest_format(v: &Value) -> &str {
    v.get("format").and_then(Value::as_str).unwrap_or("")
}
