//! Table answers for lists whose items are JSON bytes (from the watch cache or the
//! datastore). The cells need each object decoded, but not its managed fields (most of a
//! typical object's metadata, and read by no printer), and the row's object
//! (`PartialObjectMetadata`, or the whole object) is the stored JSON itself: it is copied
//! into the answer, never decoded and encoded again.

use bytes::Bytes;
use chrono::{DateTime, Utc};
use serde::de::{Deserializer, MapAccess, Visitor};
use serde::Deserialize;
use serde_json::value::RawValue;
use serde_json::{Map, Value};
use skiff_api::registry::ResourceInfo;
use skiff_api::table::{IncludeObject, PartialObjectMetadata, Rows, Table};

use skiff_api::status::ApiError;

/// A listed object as a Table row needs it.
struct Item<'a> {
    /// The object without `metadata.managedFields`, for the cells.
    lean: Value,
    /// The stored `metadata.managedFields`, as JSON.
    managed_fields: Option<&'a RawValue>,
    /// The whole stored object, as JSON (only read for `includeObject=Object`).
    whole: Option<&'a RawValue>,
}

/// What a row carries, serialized from the stored JSON.
#[derive(serde::Serialize)]
#[serde(untagged)]
enum RowObject<'a> {
    Metadata(PartialObjectMetadata<Metadata<'a>>),
    Whole(&'a RawValue),
}

/// An object's metadata, serialized from its decoded part and its raw managed fields (in
/// key order, as the stored map has them).
struct Metadata<'a> {
    lean: Option<&'a Map<String, Value>>,
    managed_fields: Option<&'a RawValue>,
}

impl serde::Serialize for Metadata<'_> {
    fn serialize<S: serde::Serializer>(&self, s: S) -> Result<S::Ok, S::Error> {
        use serde::ser::SerializeMap;
        const KEY: &str = "managedFields";
        let mut map = s.serialize_map(None)?;
        let mut pending = self.managed_fields;
        for (k, v) in self.lean.into_iter().flatten() {
            if let Some(raw) = pending.filter(|_| k.as_str() > KEY) {
                map.serialize_entry(KEY, raw)?;
                pending = None;
            }
            map.serialize_entry(k, v)?;
        }
        if let Some(raw) = pending {
            map.serialize_entry(KEY, raw)?;
        }
        map.end()
    }
}

/// The Table of a list's items (in the order given), as the answer's bytes. Each item is
/// decoded, made into its row, encoded and freed in turn (freeing a decoded object while it
/// is still in the cache is cheap; freeing thousands later costs as much as decoding them),
/// and a large list is split across two threads.
pub fn table_json(
    info: &ResourceInfo,
    items: &[Bytes],
    include: IncludeObject,
    resource_version: &str,
    continue_token: Option<&str>,
    now: DateTime<Utc>,
) -> Result<Vec<u8>, ApiError> {
    let rows = Rows::of(info.group, info.plural);
    let encoding = |e: serde_json::Error| ApiError::internal(format!("encoding a table: {e}"));
    if rows.reorders() {
        // Rows in upstream's own order: all decoded first, then sorted.
        let decoded = items
            .iter()
            .map(|b| decode(b, include))
            .collect::<Result<Vec<_>, _>>()?;
        let table = Table::new(
            info.group,
            info.plural,
            decoded
                .iter()
                .map(|item| (&item.lean, row_object(item, include))),
            resource_version,
            continue_token,
            now,
        );
        return serde_json::to_vec(&table).map_err(encoding);
    }
    // `{"apiVersion":..,"rows":[]}` with the rows spliced in.
    let head: Table<()> = Table::with_rows(
        info.group,
        info.plural,
        Vec::new(),
        resource_version,
        continue_token,
    );
    let head = serde_json::to_vec(&head).map_err(encoding)?;
    let Some(open) = head.strip_suffix(b"]}") else {
        return Err(ApiError::internal("encoding a table: unexpected head"));
    };
    let write_rows = |part: &[Bytes]| -> Result<Vec<u8>, ApiError> {
        let mut out = Vec::with_capacity(part.iter().map(Bytes::len).sum::<usize>());
        for (i, bytes) in part.iter().enumerate() {
            if i > 0 {
                out.push(b',');
            }
            let item = decode(bytes, include)?;
            let row = rows.row(&item.lean, row_object(&item, include), now);
            serde_json::to_writer(&mut out, &row).map_err(encoding)?;
        }
        Ok(out)
    };
    let (first, second) = crate::in_two_halves(items, write_rows)?;
    let parts = [first, second];
    let mut body = Vec::with_capacity(open.len() + parts.iter().map(Vec::len).sum::<usize>() + 4);
    body.extend_from_slice(open);
    for (i, part) in parts.iter().filter(|p| !p.is_empty()).enumerate() {
        if i > 0 {
            body.push(b',');
        }
        body.extend_from_slice(part);
    }
    body.extend_from_slice(b"]}");
    Ok(body)
}

fn row_object<'a>(item: &'a Item<'a>, include: IncludeObject) -> Option<RowObject<'a>> {
    match include {
        IncludeObject::None => None,
        IncludeObject::Metadata => {
            Some(RowObject::Metadata(PartialObjectMetadata::new(Metadata {
                lean: item.lean.get("metadata").and_then(Value::as_object),
                managed_fields: item.managed_fields,
            })))
        }
        IncludeObject::Object => item.whole.map(RowObject::Whole),
    }
}

fn decode(bytes: &[u8], include: IncludeObject) -> Result<Item<'_>, ApiError> {
    let bad = |e: serde_json::Error| {
        ApiError::internal(format!("a listed object cannot be decoded: {e}"))
    };
    let whole: Option<&RawValue> = if include == IncludeObject::Object {
        Some(serde_json::from_slice(bytes).map_err(bad)?)
    } else {
        None
    };
    let mut de = serde_json::Deserializer::from_slice(bytes);
    let (lean, managed_fields) = de.deserialize_map(LeanObject).map_err(bad)?;
    de.end().map_err(bad)?;
    Ok(Item {
        lean,
        managed_fields,
        whole,
    })
}

/// Visits an object's top level: everything is decoded but `metadata.managedFields`, which
/// is kept raw.
struct LeanObject;

impl<'de> Visitor<'de> for LeanObject {
    type Value = (Value, Option<&'de RawValue>);

    fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("an object")
    }

    fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
        let mut top = Map::new();
        let mut managed_fields = None;
        while let Some(key) = access.next_key::<String>()? {
            if key == "metadata" {
                let Lean(metadata, raw) = access.next_value()?;
                top.insert(key, metadata);
                managed_fields = raw;
            } else {
                top.insert(key, access.next_value()?);
            }
        }
        Ok((Value::Object(top), managed_fields))
    }
}

/// A metadata value decoded without `managedFields`, which is kept raw (skipped, not built).
struct Lean<'de>(Value, Option<&'de RawValue>);

impl<'de> Deserialize<'de> for Lean<'de> {
    fn deserialize<D: Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
        struct Fields;
        impl<'de> Visitor<'de> for Fields {
            type Value = Lean<'de>;

            fn expecting(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str("an object's metadata")
            }

            fn visit_map<A: MapAccess<'de>>(self, mut access: A) -> Result<Self::Value, A::Error> {
                let mut m = Map::new();
                let mut managed = None;
                while let Some(key) = access.next_key::<String>()? {
                    if key == "managedFields" {
                        managed = Some(access.next_value::<&'de RawValue>()?);
                    } else {
                        let value = access.next_value()?;
                        m.insert(key, value);
                    }
                }
                Ok(Lean(Value::Object(m), managed))
            }

            fn visit_unit<E: serde::de::Error>(self) -> Result<Self::Value, E> {
                Ok(Lean(Value::Null, None))
            }
        }
        d.deserialize_any(Fields)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use serde_json::json;
    use skiff_api::registry::Registry;

    fn pods() -> ResourceInfo {
        Registry::builtin()
            .get("", "v1", "pods")
            .expect("pods are served")
            .clone()
    }

    fn stored(name: &str) -> Bytes {
        let pod = json!({"apiVersion": "v1", "kind": "Pod",
            "metadata": {"name": name, "namespace": "default", "resourceVersion": "7",
                "creationTimestamp": "2026-01-01T00:00:00Z", "labels": {"app": "x"},
                "managedFields": [{"manager": "kubectl", "operation": "Update",
                    "apiVersion": "v1", "fieldsType": "FieldsV1",
                    "fieldsV1": {"f:metadata": {"f:labels": {".": {}, "f:app": {}}}}}]},
            "spec": {"containers": [{"name": "c", "image": "i"}], "nodeName": "n1"},
            "status": {"phase": "Running", "podIP": "10.42.0.5"}});
        Bytes::from(serde_json::to_vec(&pod).expect("encodes"))
    }

    /// The Table built from stored bytes is the Table built from decoded objects: same
    /// columns, cells and row objects (the metadata with its managed fields, as upstream).
    #[test]
    fn raw_rows_match_the_decoded_table() {
        let info = pods();
        let items = vec![stored("a"), stored("b")];
        let now = chrono::Utc::now();
        for include in [
            IncludeObject::None,
            IncludeObject::Metadata,
            IncludeObject::Object,
        ] {
            let bytes = table_json(&info, &items, include, "7", Some("tok"), now).expect("table");
            let got: Value = serde_json::from_slice(&bytes).expect("json");
            let objects: Vec<Value> = items
                .iter()
                .map(|b| serde_json::from_slice(b).expect("json"))
                .collect();
            let want = skiff_api::table::table(
                info.group,
                info.plural,
                &objects,
                "7",
                Some("tok"),
                include,
                now,
            );
            assert_eq!(got, want, "{include:?}");
        }
    }

    #[test]
    fn an_undecodable_item_is_an_internal_error_not_a_panic() {
        let info = pods();
        let err = table_json(
            &info,
            &[Bytes::from_static(b"{\"metadata\":")],
            IncludeObject::Metadata,
            "1",
            None,
            chrono::Utc::now(),
        )
        .expect_err("undecodable");
        assert_eq!(err.code, 500);
    }

    /// Enough items to take the two-thread path keep their order.
    #[test]
    fn a_large_list_keeps_its_order() {
        let info = pods();
        let items: Vec<Bytes> = (0..1500).map(|i| stored(&format!("p{i:04}"))).collect();
        let bytes = table_json(
            &info,
            &items,
            IncludeObject::None,
            "7",
            None,
            chrono::Utc::now(),
        )
        .expect("table");
        let got: Value = serde_json::from_slice(&bytes).expect("json");
        let rows = got["rows"].as_array().expect("rows");
        assert_eq!(rows.len(), 1500);
        assert_eq!(rows[0]["cells"][0], "p0000");
        assert_eq!(rows[1499]["cells"][0], "p1499");
    }
}
