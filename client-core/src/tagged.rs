//! Decoding internally tagged enums (`{"type": "batch", "id": ..., ...}`) without serde's
//! buffering.
//!
//! `#[serde(tag = "...")]` on `Deserialize` reads the whole object into serde's private
//! `Content` tree first, because the tag may come anywhere, and then decodes the variant from
//! that copy. That copies every frame once more and costs about 100 KB of wasm code (a
//! `Content` decoder for every field type). Our writers (serde's `Serialize` derive of the same
//! enums) always put the tag first, so [`deserialize`] reads the first key: when it is the tag,
//! the variant's fields are decoded straight from the rest of the object. Objects whose tag
//! comes later are still accepted: they are buffered, rewritten with the tag first, and decoded
//! again (slower, but nobody sends them).
//!
//! An enum opts in by keeping `#[serde(tag = ...)]` for `Serialize`, deriving an externally
//! tagged twin through `#[serde(remote = ...)]` (the compiler checks that the twin's variants
//! and fields match the enum's), and naming both in [`decode_tag_first!`](crate::decode_tag_first).

use serde::de::value::MapAccessDeserializer;
use serde::de::{self, DeserializeSeed, Deserializer, EnumAccess, IgnoredAny, MapAccess, VariantAccess, Visitor};
use serde::forward_to_deserialize_any;
use std::fmt;
use std::marker::PhantomData;

/// An enum serialised with `#[serde(tag = TAG)]`.
pub trait InternallyTagged: Sized + de::DeserializeOwned {
    /// The tag's key.
    const TAG: &'static str;
    /// Decodes the enum as if it were externally tagged (`deserialize_enum`); [`deserialize`]
    /// hands it the tag as the variant and the rest of the object as the variant's fields.
    fn deserialize_untagged_variant<'de, D: Deserializer<'de>>(d: D) -> Result<Self, D::Error>;
}

/// Makes `$enum` (serialised with `#[serde(tag = $tag)]`) decode tag first: implements
/// [`InternallyTagged`] through `$twin`, its externally tagged copy (derived with
/// `#[serde(remote = "...")]`), and `Deserialize` through [`deserialize`].
#[macro_export]
macro_rules! decode_tag_first {
    ($enum:ty, $twin:ident, $tag:literal) => {
        impl $crate::tagged::InternallyTagged for $enum {
            const TAG: &'static str = $tag;
            fn deserialize_untagged_variant<'de, D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $twin::deserialize(d)
            }
        }

        impl<'de> ::serde::Deserialize<'de> for $enum {
            fn deserialize<D: ::serde::Deserializer<'de>>(d: D) -> Result<Self, D::Error> {
                $crate::tagged::deserialize(d)
            }
        }
    };
}

/// `Deserialize::deserialize` of an [`InternallyTagged`] enum.
pub fn deserialize<'de, T: InternallyTagged, D: Deserializer<'de>>(d: D) -> Result<T, D::Error> {
    d.deserialize_map(TaggedVisitor(PhantomData))
}

struct TaggedVisitor<T>(PhantomData<T>);

impl<'de, T: InternallyTagged> Visitor<'de> for TaggedVisitor<T> {
    type Value = T;

    fn expecting(&self, f: &mut fmt::Formatter) -> fmt::Result {
        write!(f, "an object with a `{}` field", T::TAG)
    }

    fn visit_map<A: MapAccess<'de>>(self, mut map: A) -> Result<T, A::Error> {
        let Some(key) = map.next_key::<String>()? else {
            return Err(de::Error::missing_field(T::TAG));
        };
        if key == T::TAG {
            let variant = map.next_value::<String>()?;
            return T::deserialize_untagged_variant(VariantFields { variant, map });
        }
        // The rare case of a tag after other fields: the object is buffered, written again
        // with the tag first, and that is decoded.
        let text = tag_first(T::TAG, key, map)?;
        serde_json::from_str(&text).map_err(de::Error::custom)
    }
}

/// The rest of the object whose first key is `first`, as JSON text with the `tag` field first.
/// (Not generic in the enum: compiled once for all of them.)
fn tag_first<'de, A: MapAccess<'de>>(tag: &'static str, first: String, mut map: A) -> Result<String, A::Error> {
    let mut fields = vec![(first, map.next_value::<serde_json::Value>()?)];
    while let Some(entry) = map.next_entry::<String, serde_json::Value>()? {
        fields.push(entry);
    }
    let Some(at) = fields.iter().position(|(k, _)| k == tag) else {
        return Err(de::Error::missing_field(tag));
    };
    let tag = fields.remove(at);
    // `{"tag":"v","a":1,...}`, the other fields in their order. (Written out rather than
    // through a `serde_json::Map`: collecting into a map compiles in a sort.)
    let mut text = String::from("{");
    for (i, (key, value)) in std::iter::once(tag).chain(fields).enumerate() {
        if i > 0 {
            text.push(',');
        }
        text.push_str(&serde_json::Value::String(key).to_string());
        text.push(':');
        text.push_str(&value.to_string());
    }
    text.push('}');
    Ok(text)
}

/// The tag as an externally tagged variant, the rest of the object as its content.
struct VariantFields<A> {
    variant: String,
    map: A,
}

impl<'de, A: MapAccess<'de>> Deserializer<'de> for VariantFields<A> {
    type Error = A::Error;

    fn deserialize_any<V: Visitor<'de>>(self, visitor: V) -> Result<V::Value, A::Error> {
        visitor.visit_enum(self)
    }

    forward_to_deserialize_any! {
        bool i8 i16 i32 i64 i128 u8 u16 u32 u64 u128 f32 f64 char str string bytes byte_buf option
        unit unit_struct newtype_struct seq tuple tuple_struct map struct enum identifier ignored_any
    }
}

impl<'de, A: MapAccess<'de>> EnumAccess<'de> for VariantFields<A> {
    type Error = A::Error;
    type Variant = Fields<A>;

    fn variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<(S::Value, Fields<A>), A::Error> {
        let variant = seed.deserialize(de::value::StringDeserializer::<A::Error>::new(self.variant))?;
        Ok((variant, Fields(self.map)))
    }
}

/// The object's fields after the tag.
struct Fields<A>(A);

impl<'de, A: MapAccess<'de>> VariantAccess<'de> for Fields<A> {
    type Error = A::Error;

    /// Like serde's internally tagged unit variants: other fields are ignored.
    fn unit_variant(mut self) -> Result<(), A::Error> {
        while self.0.next_entry::<IgnoredAny, IgnoredAny>()?.is_some() {}
        Ok(())
    }

    /// A newtype variant holds a struct whose fields sit next to the tag.
    fn newtype_variant_seed<S: DeserializeSeed<'de>>(self, seed: S) -> Result<S::Value, A::Error> {
        seed.deserialize(MapAccessDeserializer::new(self.0))
    }

    fn tuple_variant<V: Visitor<'de>>(self, _len: usize, _visitor: V) -> Result<V::Value, A::Error> {
        Err(de::Error::custom("tuple variants cannot be internally tagged"))
    }

    fn struct_variant<V: Visitor<'de>>(
        self,
        _fields: &'static [&'static str],
        visitor: V,
    ) -> Result<V::Value, A::Error> {
        visitor.visit_map(self.0)
    }
}

#[cfg(test)]
mod tests {
    use serde::{Deserialize, Serialize};

    #[derive(Debug, PartialEq, Serialize)]
    #[serde(tag = "type", rename_all = "snake_case")]
    enum Shape {
        Dot,
        Circle {
            r: f64,
            #[serde(default)]
            label: Option<String>,
        },
        Square(Side),
    }

    #[derive(Debug, PartialEq, Serialize, Deserialize)]
    #[serde(deny_unknown_fields)]
    struct Side {
        side: u32,
    }

    #[derive(Deserialize)]
    #[serde(remote = "Shape", rename_all = "snake_case")]
    enum ShapeFields {
        Dot,
        Circle {
            r: f64,
            #[serde(default)]
            label: Option<String>,
        },
        Square(Side),
    }

    crate::decode_tag_first!(Shape, ShapeFields, "type");

    fn parse(text: &str) -> Result<Shape, String> {
        serde_json::from_str(text).map_err(|e| e.to_string())
    }

    #[test]
    fn decodes_what_serialize_writes() {
        let shapes = [
            Shape::Dot,
            Shape::Circle { r: 1.5, label: Some("a\"b".into()) },
            Shape::Circle { r: -0.0, label: None },
            Shape::Square(Side { side: 3 }),
        ];
        for shape in shapes {
            let text = serde_json::to_string(&shape).unwrap();
            assert_eq!(parse(&text).unwrap(), shape, "{text}");
        }
    }

    #[test]
    fn accepts_the_tag_anywhere() {
        assert_eq!(parse(r#"{"r":2,"type":"circle"}"#).unwrap(), Shape::Circle { r: 2.0, label: None });
        assert_eq!(
            parse(r#"{"label":"x","r":2.5,"type":"circle"}"#).unwrap(),
            Shape::Circle { r: 2.5, label: Some("x".into()) }
        );
        assert_eq!(parse(r#"{"side":4,"type":"square"}"#).unwrap(), Shape::Square(Side { side: 4 }));
        assert_eq!(parse(r#"{"x":[1,{"y":null}],"type":"dot"}"#).unwrap(), Shape::Dot);
    }

    #[test]
    fn errors_like_serde() {
        assert!(parse(r#"{"type":"nope"}"#).unwrap_err().contains("unknown variant `nope`"));
        assert!(parse(r#"{"r":1}"#).unwrap_err().contains("missing field `type`"));
        assert!(parse(r#"{}"#).unwrap_err().contains("missing field `type`"));
        assert!(parse(r#"{"type":"circle"}"#).unwrap_err().contains("missing field `r`"));
        assert!(parse(r#"{"type":"square","side":1,"extra":2}"#).unwrap_err().contains("unknown field `extra`"));
        assert!(parse(r#"{"type":"circle","r":1,"extra":2}"#).is_ok());
        assert!(parse(r#"{"type":"dot","extra":2}"#).is_ok());
        assert!(parse(r#"[1]"#).is_err());
    }
}
