//! The enum over every event family of a domain (`events::photo::Any`): one consumer handles a
//! whole domain, with a `match` the compiler checks for exhaustiveness.
//!
//! Its consumers filter on one subject, `events.<domain>.>`: one filter travels in the
//! consumer-create subject, where the server's permissions pin a durable to its events. An
//! event of a type of the domain that this build does not know is therefore delivered, and
//! dead-lettered as undecodable: never skipped in silence.

use std::collections::BTreeMap;

use proc_macro2::TokenStream;
use quote::{format_ident, quote};

use crate::catalog::EventSchema;
use crate::naming::SUBJECT_PREFIX;

/// Its name in the domain's module.
pub(crate) const NAME: &str = "Any";

/// The enum and its impls for the domain whose families are `families` (family enum name ->
/// its versions). None when the domain's events live in several streams: a consumer reads one.
pub(crate) fn tokens(
    rt: &syn::Path,
    domain: &str,
    families: &BTreeMap<String, Vec<&EventSchema>>,
    sensitive: bool,
) -> Option<TokenStream> {
    let stream = &families.values().next()?.first()?.stream;
    if families.values().flatten().any(|e| &e.stream != stream) {
        return None;
    }
    let name = format_ident!("{NAME}");
    let subject = format!("{SUBJECT_PREFIX}.{domain}.>");
    let mut variants = Vec::new();
    let mut types = Vec::new();
    let mut event_types = Vec::new();
    for (fam, versions) in families {
        let ident = format_ident!("{fam}");
        let event_type = &versions[0].name.event_type;
        let doc = format!(" `{event_type}`, any version.");
        variants.push(quote! {
            #[doc = #doc]
            #ident(#ident)
        });
        types.push(ident);
        event_types.push(event_type.clone());
    }
    let doc = format!(
        " Every event of the `{domain}` domain this build knows, by family: what a consumer of \
         the whole domain receives (its filter is `{subject}`)."
    );
    let known = event_types.join(", ");
    let unknown_doc = format!(
        " Match it exhaustively: a family added to the domain is a compile error where it is \
         not handled. An event of a type of the domain this build does not know ({known} are \
         known) is dead-lettered as undecodable, not skipped."
    );
    let variants_of = types.clone();
    let decode_arms = types.iter().zip(&event_types).map(|(t, et)| {
        quote! { #et => <#t as #rt::Consumable>::decode(version, raw).map(Self::#t), }
    });
    let decrypting_arms = types.iter().zip(&event_types).map(|(t, et)| {
        quote! {
            #et => <#t as #rt::Consumable>::decode_decrypting(version, raw, decryptor).map(Self::#t),
        }
    });
    let type_arms = types
        .iter()
        .zip(&event_types)
        .map(|(t, et)| quote! { Self::#t(_) => #et, });
    let version_arms = types
        .iter()
        .map(|t| quote! { Self::#t(event) => #rt::Consumable::version(event), });
    let froms = types.iter().map(|t| {
        quote! {
            impl ::std::convert::From<#t> for #name {
                fn from(event: #t) -> Self {
                    Self::#t(event)
                }
            }
        }
    });
    let (has_sensitive, decrypting) = if sensitive {
        (
            quote! {
            const HAS_SENSITIVE_FIELDS: bool =
                false #(|| <#variants_of as #rt::Consumable>::HAS_SENSITIVE_FIELDS)*;
            },
            quote! {
            fn decode_typed_decrypting(event_type: &str, version: u32, raw: &#rt::wire::RawEvent<'_>, decryptor: &#rt::wire::crypto::Decryptor<'_>) -> ::std::result::Result<Self, #rt::error::DecodeError> {
                match event_type {
                    #(#decrypting_arms)*
                    other => ::std::result::Result::Err(#rt::error::DecodeError::unknown_event_type(other, &[#(#event_types),*])),
                }
            }
            },
        )
    } else {
        (quote! {}, quote! {})
    };
    Some(quote! {
        #[doc = #doc]
        #[doc = ""]
        #[doc = #unknown_doc]
        #[derive(Debug, Clone, PartialEq)]
        pub enum #name {
            #(#variants,)*
        }
        impl #name {
            /// The event type of the value (`domain.name`).
            pub fn event_type(&self) -> &'static str {
                match self {
                    #(#type_arms)*
                }
            }
        }
        impl #rt::Consumable for #name {
            const FAMILY: #rt::Family = #rt::Family {
                event_type: #domain,
                versions: &[],
                subjects: &[#subject],
                stream: #stream,
            };
            #has_sensitive
            /// A domain's events are told apart by their type: see `decode_typed`.
            fn decode(version: u32, raw: &#rt::wire::RawEvent<'_>) -> ::std::result::Result<Self, #rt::error::DecodeError> {
                let _ = (version, raw);
                ::std::result::Result::Err(#rt::error::DecodeError::unknown_event_type(#domain, &[#(#event_types),*]))
            }
            fn decode_typed(event_type: &str, version: u32, raw: &#rt::wire::RawEvent<'_>) -> ::std::result::Result<Self, #rt::error::DecodeError> {
                match event_type {
                    #(#decode_arms)*
                    other => ::std::result::Result::Err(#rt::error::DecodeError::unknown_event_type(other, &[#(#event_types),*])),
                }
            }
            #decrypting
            fn version(&self) -> u32 {
                match self {
                    #(#version_arms)*
                }
            }
        }
        #(#froms)*
    })
}
