//! Tokens limited to listed collections, over gRPC: which collection a call touches. Every
//! Qdrant request message that names one collection carries it as field 1 (`collection_name`),
//! so the edge reads that field from the buffered message instead of each handler checking.

use crate::api::jwt::{Access, Need};

/// What a method needs from a token limited to listed collections.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scope {
    /// Lists of collections or aliases: allowed, answered filtered to the token's collections.
    List,
    /// The collection named in field 1 of the request, read or written.
    Collection { write: bool },
    /// Outside any one collection (creating or deleting collections, aliases, full snapshots,
    /// cluster setup): needs global access.
    Global,
}

/// The scope of gRPC method `method` (`/package.Service/Method`); `reads` says whether the edge
/// counts it as a read.
pub fn scope_of(method: &str, reads: bool) -> Scope {
    let Some((service, name)) = method.trim_start_matches('/').split_once('/') else { return Scope::Global };
    match (service, name) {
        // Adding or dropping a named vector changes the collection's config: global access,
        // as `PUT`/`DELETE /collections/{c}/vectors/{v}` on REST.
        ("qdrant.Points", "CreateVectorName" | "DeleteVectorName") => Scope::Global,
        ("qdrant.Points", _) => Scope::Collection { write: !reads },
        (
            "qdrant.Collections",
            "Get" | "CollectionExists" | "CollectionClusterInfo" | "ListCollectionAliases" | "ListShardKeys",
        ) => Scope::Collection { write: false },
        ("qdrant.Collections", "List" | "ListAliases") => Scope::List,
        ("qdrant.Snapshots", "Create" | "Delete") => Scope::Collection { write: true },
        ("qdrant.Snapshots", "List") => Scope::Collection { write: false },
        _ => Scope::Global,
    }
}

/// What `scope` needs for `collection`, in the REST table's terms.
pub fn need(scope: Scope, collection: Option<String>) -> Need {
    match (scope, collection) {
        (Scope::List, _) => Need::List,
        (Scope::Collection { write: false }, Some(c)) => Need::CollectionRead(c),
        (Scope::Collection { write: true }, Some(c)) => Need::CollectionWrite(c),
        (Scope::Collection { .. }, None) | (Scope::Global, _) => Need::Manage,
    }
}

/// Whether `access` needs the request body to be judged (only collection-limited tokens do).
pub fn needs_body(access: &Access) -> bool {
    matches!(access, Access::Collections(_))
}

/// Field 1 of the protobuf message in a unary gRPC request body (one uncompressed frame), when
/// it is a UTF-8 string. A field repeated in a message counts by its last occurrence, as the
/// decoder that serves the request reads it; a malformed message names nothing.
pub fn collection_name(body: &[u8]) -> Option<String> {
    let (&compressed, rest) = body.split_first()?;
    if compressed != 0 || rest.len() < 4 {
        return None;
    }
    let len = u32::from_be_bytes([rest[0], rest[1], rest[2], rest[3]]) as usize;
    let mut msg = rest.get(4..4 + len)?;
    let mut name = None;
    while !msg.is_empty() {
        let key = varint(&mut msg)?;
        let (field, wire) = (key >> 3, key & 7);
        match wire {
            0 => {
                varint(&mut msg)?;
            }
            1 => msg = msg.get(8..)?,
            2 => {
                let n = usize::try_from(varint(&mut msg)?).ok()?;
                let bytes = msg.get(..n)?;
                if field == 1 {
                    name = Some(String::from_utf8(bytes.to_vec()).ok()?);
                }
                msg = &msg[n..];
            }
            5 => msg = msg.get(4..)?,
            _ => return None,
        }
    }
    name
}

/// A protobuf varint from the front of `b`, advancing it.
fn varint(b: &mut &[u8]) -> Option<u64> {
    let mut out = 0u64;
    for i in 0..10 {
        let (&byte, rest) = b.split_first()?;
        *b = rest;
        out |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            return Some(out);
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;
    use prost::Message;
    use qdrant_client::qdrant as pb;

    fn frame(msg: &impl Message) -> Vec<u8> {
        let bytes = msg.encode_to_vec();
        let mut out = vec![0u8];
        out.extend_from_slice(&(bytes.len() as u32).to_be_bytes());
        out.extend_from_slice(&bytes);
        out
    }

    #[test]
    fn the_collection_is_read_from_real_request_messages() {
        let search = pb::SearchPoints {
            collection_name: "books".into(),
            vector: vec![1.0; 300],
            limit: 10,
            ..Default::default()
        };
        assert_eq!(collection_name(&frame(&search)).as_deref(), Some("books"));
        let get = pb::GetCollectionInfoRequest { collection_name: "ünïcode".into() };
        assert_eq!(collection_name(&frame(&get)).as_deref(), Some("ünïcode"));
        let snap = pb::CreateSnapshotRequest { collection_name: "s".into() };
        assert_eq!(collection_name(&frame(&snap)).as_deref(), Some("s"));
        // No field 1, truncated or compressed frames name nothing.
        assert_eq!(collection_name(&frame(&pb::ListCollectionsRequest {})), None);
        let mut cut = frame(&search);
        cut.truncate(cut.len() - 3);
        assert_eq!(collection_name(&cut), None);
        let mut compressed = frame(&get);
        compressed[0] = 1;
        assert_eq!(collection_name(&compressed), None);
        assert_eq!(collection_name(&[]), None);
        // Field 1 twice: the decoder keeps the last, so the check must too.
        let mut twice = pb::GetCollectionInfoRequest { collection_name: "allowed".into() }.encode_to_vec();
        twice.extend(pb::GetCollectionInfoRequest { collection_name: "secret".into() }.encode_to_vec());
        let mut framed = vec![0u8];
        framed.extend_from_slice(&(twice.len() as u32).to_be_bytes());
        framed.extend_from_slice(&twice);
        assert_eq!(pb::GetCollectionInfoRequest::decode(&twice[..]).expect("decodes").collection_name, "secret");
        assert_eq!(collection_name(&framed).as_deref(), Some("secret"));
    }

    #[test]
    fn methods_map_to_the_rest_table() {
        assert_eq!(scope_of("/qdrant.Points/Search", true), Scope::Collection { write: false });
        assert_eq!(scope_of("/qdrant.Points/Upsert", false), Scope::Collection { write: true });
        assert_eq!(scope_of("/qdrant.Points/CreateVectorName", false), Scope::Global);
        assert_eq!(scope_of("/qdrant.Collections/Get", true), Scope::Collection { write: false });
        assert_eq!(scope_of("/qdrant.Collections/List", true), Scope::List);
        assert_eq!(scope_of("/qdrant.Collections/Delete", false), Scope::Global);
        assert_eq!(scope_of("/qdrant.Collections/UpdateAliases", false), Scope::Global);
        assert_eq!(scope_of("/qdrant.Snapshots/Create", false), Scope::Collection { write: true });
        assert_eq!(scope_of("/qdrant.Snapshots/CreateFull", false), Scope::Global);
        assert_eq!(need(Scope::Collection { write: true }, None), Need::Manage);
        assert_eq!(need(Scope::Collection { write: false }, Some("c".into())), Need::CollectionRead("c".into()));
    }
}
