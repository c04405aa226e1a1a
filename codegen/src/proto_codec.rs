//! The protobuf encoder and decoder of each event version, generated over its Rust types.
//!
//! The descriptors ([`crate::proto`]) say what each message holds; typify's output says how the
//! Rust types hold it. This module reads typify's structs (field names, types and serde
//! attributes) and walks them alongside the descriptor of each event version, writing one
//! encoder and one decoder per object message: plain code over the fields, calling the small
//! helpers of the runtime's `wire::proto::rt`. The bytes are the ones the descriptor-driven
//! codec writes from the event's JSON value (fields in the struct's order, serde's), so both
//! decode each other's payloads.
//!
//! Numbers are per event version (a shared definition may be numbered differently in two
//! events), so the functions belong to an event, not to a type: `shared::Money` gets one pair
//! per event version that contains it.
//!
//! A shape this module does not handle (a type of another catalog's crate, a serde attribute it
//! does not know, a Rust type that does not match the descriptor) leaves the event without
//! generated functions: the runtime then encodes and decodes it through its JSON value, slower
//! but the same bytes.

use std::collections::BTreeMap;

use proc_macro2::{Ident, TokenStream};
use quote::{format_ident, quote};

use crate::proto::{Kind, Model, Shape};

/// A struct typify generated: its fields in declaration (serde) order.
#[derive(Clone)]
pub(crate) struct RustStruct {
    fields: Vec<RustField>,
}

#[derive(Clone)]
struct RustField {
    ident: Ident,
    /// The JSON property name.
    json: String,
    ty: syn::Type,
    /// `skip_serializing_if`.
    skip_if: Option<syn::Path>,
    /// `default` (`Some(None)`) or `default = "path"` (`Some(Some(path))`).
    default: Option<Option<syn::Path>>,
}

/// The structs of one module of typify's output, by name; those it cannot describe (serde
/// attributes this module does not know) are left out. With `module` (the `shared` module),
/// the types its fields name by their bare name are named from a domain module
/// (`super::shared::Money`), where the generated functions are.
pub(crate) fn structs(tokens: &TokenStream, module: Option<&str>) -> BTreeMap<String, RustStruct> {
    let Ok(file) = syn::parse2::<syn::File>(tokens.clone()) else {
        return BTreeMap::new();
    };
    let mut out = BTreeMap::new();
    for item in file.items {
        let syn::Item::Struct(s) = item else { continue };
        let syn::Fields::Named(named) = &s.fields else {
            continue;
        };
        if !s.generics.params.is_empty() || !struct_attrs_known(&s.attrs) {
            continue;
        }
        let fields: Option<Vec<RustField>> = named.named.iter().map(field).collect();
        if let Some(mut fields) = fields {
            if let Some(module) = module {
                for f in &mut fields {
                    qualify(&mut f.ty, module);
                }
            }
            out.insert(s.ident.to_string(), RustStruct { fields });
        }
    }
    out
}

/// Names the types `ty` names by their bare name (types of the same module) as
/// `super::<module>::Name`.
fn qualify(ty: &mut syn::Type, module: &str) {
    const PRIMITIVES: &[&str] = &[
        "i8", "i16", "i32", "i64", "i128", "isize", "u8", "u16", "u32", "u64", "u128", "usize",
        "f32", "f64", "bool", "char", "str", "String",
    ];
    let syn::Type::Path(p) = ty else { return };
    for seg in &mut p.path.segments {
        if let syn::PathArguments::AngleBracketed(args) = &mut seg.arguments {
            for arg in &mut args.args {
                if let syn::GenericArgument::Type(t) = arg {
                    qualify(t, module);
                }
            }
        }
    }
    if p.qself.is_none()
        && p.path.leading_colon.is_none()
        && p.path.segments.len() == 1
        && !PRIMITIVES.iter().any(|n| p.path.segments[0].ident == n)
    {
        let module = format_ident!("{module}");
        let name = p.path.segments[0].clone();
        *ty = syn::parse_quote!(super::#module::#name);
    }
}

/// Only `deny_unknown_fields` changes nothing on the wire.
fn struct_attrs_known(attrs: &[syn::Attribute]) -> bool {
    attrs
        .iter()
        .filter(|a| a.path().is_ident("serde"))
        .all(|a| {
            a.parse_nested_meta(|meta| {
                if meta.path.is_ident("deny_unknown_fields") {
                    Ok(())
                } else {
                    Err(meta.error("unknown"))
                }
            })
            .is_ok()
        })
}

fn field(f: &syn::Field) -> Option<RustField> {
    let ident = f.ident.clone()?;
    let mut out = RustField {
        json: ident.to_string().trim_start_matches("r#").to_string(),
        ident,
        ty: f.ty.clone(),
        skip_if: None,
        default: None,
    };
    for attr in f.attrs.iter().filter(|a| a.path().is_ident("serde")) {
        attr.parse_nested_meta(|meta| {
            if meta.path.is_ident("rename") {
                out.json = meta.value()?.parse::<syn::LitStr>()?.value();
            } else if meta.path.is_ident("skip_serializing_if") {
                out.skip_if = Some(meta.value()?.parse::<syn::LitStr>()?.parse()?);
            } else if meta.path.is_ident("default") {
                out.default = Some(if meta.input.peek(syn::Token![=]) {
                    Some(meta.value()?.parse::<syn::LitStr>()?.parse()?)
                } else {
                    None
                });
            } else if meta.path.is_ident("deserialize_with") {
                // typify's way to require a nullable property: absent is `None` on the wire.
                let with = meta.value()?.parse::<syn::LitStr>()?.value();
                let with = with.replace(' ', "");
                if with != "Option::deserialize" && with != "::std::option::Option::deserialize" {
                    return Err(meta.error("unknown deserializer"));
                }
            } else {
                return Err(meta.error("unknown"));
            }
            Ok(())
        })
        .ok()?;
    }
    Some(out)
}

/// typify's structs: those of the catalog's `shared` module and of one domain module.
pub(crate) struct Structs<'a> {
    pub(crate) shared: &'a BTreeMap<String, RustStruct>,
    pub(crate) domain: &'a BTreeMap<String, RustStruct>,
}

impl Structs<'_> {
    /// The struct a field type (as written in the domain module) names: a domain type by its
    /// name, a shared one as `super::shared::Name`. Types of other crates are not known.
    fn get(&self, ty: &syn::Type) -> Option<&RustStruct> {
        let syn::Type::Path(p) = ty else { return None };
        if p.qself.is_some() || p.path.leading_colon.is_some() {
            return None;
        }
        let names: Vec<String> = p
            .path
            .segments
            .iter()
            .map(|s| s.ident.to_string())
            .collect();
        if p.path.segments.iter().any(|s| !s.arguments.is_none()) {
            return None;
        }
        match names.as_slice() {
            [name] => self.domain.get(name),
            [sup, shared, name] if sup == "super" && shared == crate::naming::SHARED_DIR => {
                self.shared.get(name)
            }
            _ => None,
        }
    }
}

/// The generated functions of one event version (to place in its domain module) and the
/// `PROTO_CODEC` constant of its `Event` impl (a macro: without eventhub's `protobuf` feature,
/// nothing); `None` when some part of it is not handled.
pub(crate) fn event_codec(
    rt: &syn::Path,
    structs: &Structs<'_>,
    event: &Ident,
    model: &Model,
) -> Option<(TokenStream, TokenStream)> {
    let mut g = Gen {
        rt,
        structs,
        model,
        queue: vec![(0, syn::parse_quote!(#event))],
        done: BTreeMap::new(),
        fns: Vec::new(),
        fresh: 0,
    };
    while let Some((index, ty)) = g.queue.pop() {
        let name = quote!(#ty).to_string();
        if let Some(known) = g.done.get(&index) {
            if *known != name {
                return None;
            }
            continue;
        }
        g.done.insert(index, name);
        g.object(index, &ty)?;
    }
    let (enc, dec) = (g.enc_fn(0), g.dec_fn(0));
    let fns = g.fns;
    Some((
        quote! { #(#fns)* },
        quote! { #rt::__proto_codec!(#enc, #dec); },
    ))
}

struct Gen<'a> {
    rt: &'a syn::Path,
    structs: &'a Structs<'a>,
    model: &'a Model,
    /// Object messages still to write, with their Rust type.
    queue: Vec<(usize, syn::Type)>,
    /// Object messages written, with their Rust type (as text): a message must be one type.
    done: BTreeMap<usize, String>,
    fns: Vec<TokenStream>,
    /// For fresh local names.
    fresh: usize,
}

/// The one generic argument of `ty` if its last path segment is `name`.
fn generic<'t>(ty: &'t syn::Type, name: &str) -> Option<&'t syn::Type> {
    let args = generics(ty, name)?;
    match args.as_slice() {
        [one] => Some(one),
        _ => None,
    }
}

fn generics<'t>(ty: &'t syn::Type, name: &str) -> Option<Vec<&'t syn::Type>> {
    let syn::Type::Path(p) = ty else { return None };
    let last = p.path.segments.last()?;
    if last.ident != name {
        return None;
    }
    let syn::PathArguments::AngleBracketed(args) = &last.arguments else {
        return None;
    };
    args.args
        .iter()
        .map(|a| match a {
            syn::GenericArgument::Type(t) => Some(t),
            _ => None,
        })
        .collect()
}

/// The value type of a map typify generates.
fn map_value(ty: &syn::Type) -> Option<&syn::Type> {
    let args = generics(ty, "HashMap")
        .or_else(|| generics(ty, "BTreeMap"))
        .or_else(|| generics(ty, "Map").filter(|_| is_serde_json(ty)))?;
    match args.as_slice() {
        [k, v] if is_named(k, &["String"]) => Some(v),
        _ => None,
    }
}

/// Whether `ty` is a type of `serde_json` (`::serde_json::Map<…>`).
fn is_serde_json(ty: &syn::Type) -> bool {
    let syn::Type::Path(p) = ty else { return false };
    p.path
        .segments
        .first()
        .is_some_and(|s| s.ident == "serde_json")
}

/// Whether `ty` is a plain type whose last segment is one of `names`.
fn is_named(ty: &syn::Type, names: &[&str]) -> bool {
    let syn::Type::Path(p) = ty else { return false };
    p.path
        .segments
        .last()
        .is_some_and(|s| s.arguments.is_none() && names.iter().any(|n| s.ident == n))
}

const INTS: &[&str] = &[
    "i8",
    "i16",
    "i32",
    "i64",
    "isize",
    "u8",
    "u16",
    "u32",
    "u64",
    "usize",
    "NonZeroU8",
    "NonZeroU16",
    "NonZeroU32",
    "NonZeroU64",
    "NonZeroUsize",
    "NonZeroI8",
    "NonZeroI16",
    "NonZeroI32",
    "NonZeroI64",
    "NonZeroIsize",
];

fn packed(kind: Kind) -> bool {
    matches!(
        kind,
        Kind::Sint64 | Kind::Uint64 | Kind::Double | Kind::Bool
    )
}

impl Gen<'_> {
    fn fn_name(&self, prefix: &str, index: usize) -> Ident {
        let s = self.model.static_ident(index).to_string().to_lowercase();
        format_ident!("__proto_{prefix}_{s}")
    }

    fn enc_fn(&self, index: usize) -> Ident {
        self.fn_name("encode", index)
    }

    fn dec_fn(&self, index: usize) -> Ident {
        self.fn_name("decode", index)
    }

    /// Whether `kind` is a wrapper of a nullable value (an array item or map value that may be
    /// `null`): the wrapper holds the Rust `Option` itself, `None` an empty wrapper. (The
    /// wrapper of a nullable array or map is held in an `Option`: `None` is no wrapper.)
    fn holds_option(&self, kind: Kind) -> bool {
        let Kind::Message(j) = kind else { return false };
        let m = &self.model.messages[j];
        m.shape == Shape::Wrapper
            && m.fields
                .first()
                .is_some_and(|f| !f.repeated && !matches!(f.kind, Kind::Map(_)))
    }

    fn name(&mut self, base: &str) -> Ident {
        self.fresh += 1;
        format_ident!("{base}{}", self.fresh)
    }

    /// The encoder and decoder of object message `index`, whose Rust type is `ty`.
    fn object(&mut self, index: usize, ty: &syn::Type) -> Option<()> {
        let rt = self.rt;
        let model = self.model;
        let m = &model.messages[index];
        if m.shape != Shape::Object {
            return None;
        }
        let s = self.structs.get(ty)?.clone();
        // Every property of the message is a field of the struct and the other way round.
        if s.fields.len() != m.fields.len()
            || s.fields
                .iter()
                .any(|f| !m.fields.iter().any(|d| d.name == f.json))
        {
            return None;
        }
        let mut writes = Vec::new();
        let mut slots = Vec::new();
        let mut arms = Vec::new();
        let mut inits = Vec::new();
        for f in &s.fields {
            let d = m.fields.iter().find(|d| d.name == f.json)?.clone();
            let ident = &f.ident;
            let value = quote!(&v.#ident);
            let write = self.write(d.number, d.kind, d.repeated, &f.ty, value, false)?;
            writes.push(match &f.skip_if {
                Some(skip) => quote! { if !#skip(&v.#ident) { #write } },
                None => write,
            });
            let slot = format_ident!("f_{}", ident.to_string().trim_start_matches("r#"));
            let ty = &f.ty;
            let number = d.number;
            let optional = generic(ty, "Option").is_some();
            let collection =
                !optional && d.kind != Kind::Json && (d.repeated || matches!(d.kind, Kind::Map(_)));
            let (slot_ty, init, fin) = if optional || collection {
                (
                    quote!(#ty),
                    quote!(::std::default::Default::default()),
                    quote!(#slot),
                )
            } else {
                let missing = match &f.default {
                    Some(None) => quote!(::std::default::Default::default()),
                    Some(Some(path)) => quote!(#path()),
                    None => quote!(return ::std::result::Result::Err(#rt::wire::proto::rt::Fail)),
                };
                (
                    quote!(::std::option::Option<#ty>),
                    quote!(::std::option::Option::None),
                    quote! {
                        match #slot {
                            ::std::option::Option::Some(v) => v,
                            ::std::option::Option::None => #missing,
                        }
                    },
                )
            };
            let b = format_ident!("b");
            let merge = if d.kind == Kind::Json && !d.repeated {
                if optional {
                    quote! { #slot = #rt::wire::proto::rt::read_json::<#ty>(wire, &mut #b)?; }
                } else {
                    quote! { #slot = ::std::option::Option::Some(#rt::wire::proto::rt::read_json::<#ty>(wire, &mut #b)?); }
                }
            } else if optional || collection {
                self.merge(d.kind, d.repeated, ty, quote!(#slot), &b)?
            } else {
                let read = self.read(d.kind, ty, &b)?;
                quote! { #slot = ::std::option::Option::Some(#read); }
            };
            slots.push(quote! { let mut #slot: #slot_ty = #init; });
            arms.push(quote! { #number => { #merge } });
            inits.push(quote! { #ident: #fin });
        }
        let (enc, dec) = (self.enc_fn(index), self.dec_fn(index));
        self.fns.push(quote! {
            #[allow(non_snake_case)]
            fn #enc(v: &#ty, w: &mut ::std::vec::Vec<u8>) -> #rt::wire::proto::rt::R<()> {
                #(#writes)*
                ::std::result::Result::Ok(())
            }
            #[allow(unused_mut, non_snake_case)]
            fn #dec(mut b: &[u8], depth: u32) -> #rt::wire::proto::rt::R<#ty> {
                if depth > #rt::wire::proto::rt::MAX_DEPTH {
                    return ::std::result::Result::Err(#rt::wire::proto::rt::Fail);
                }
                #(#slots)*
                while !b.is_empty() {
                    let (number, wire) = #rt::wire::proto::rt::key(&mut b)?;
                    match number {
                        #(#arms)*
                        _ => #rt::wire::proto::rt::skip(number, wire, &mut b)?,
                    }
                }
                ::std::result::Result::Ok(#ty { #(#inits),* })
            }
        });
        Some(())
    }

    /// Writes field `number` holding `value` (an expression of type `&ty`). An `item` of a
    /// repeated field cannot be absent.
    fn write(
        &mut self,
        number: u32,
        kind: Kind,
        repeated: bool,
        ty: &syn::Type,
        value: TokenStream,
        item: bool,
    ) -> Option<TokenStream> {
        let rt = self.rt;
        let rt = quote!(#rt::wire::proto::rt);
        if kind == Kind::Json && !repeated {
            // The whole value, `None` as `null`, as its JSON form has it.
            return Some(quote! { #rt::json(w, #number, #value)?; });
        }
        if let Some(inner) = generic(ty, "Option").filter(|_| repeated || !self.holds_option(kind))
        {
            let x = self.name("x");
            let write = self.write(number, kind, repeated, inner, quote!(#x), item)?;
            return Some(if item {
                // A null item of an array that is no wrapper: the JSON value does not fit.
                quote! {
                    match #value {
                        ::std::option::Option::Some(#x) => { #write }
                        ::std::option::Option::None => return ::std::result::Result::Err(#rt::Fail),
                    }
                }
            } else {
                quote! { if let ::std::option::Option::Some(#x) = #value { #write } }
            });
        }
        if let Some(inner) = generic(ty, "Box") {
            return self.write(number, kind, repeated, inner, quote!(&**#value), item);
        }
        if repeated {
            let item_ty = generic(ty, "Vec")?;
            let x = self.name("x");
            if packed(kind) {
                let put = self.item(kind, item_ty, quote!(#x))?;
                let start = self.name("start");
                return Some(quote! {
                    let #start = #rt::begin(w, #number);
                    for #x in #value {
                        #put
                    }
                    #rt::end(w, #start);
                });
            }
            let write = self.write(number, kind, false, item_ty, quote!(#x), true)?;
            return Some(quote! {
                for #x in #value {
                    #write
                }
            });
        }
        Some(match kind {
            Kind::String if is_named(ty, &["String"]) => {
                quote! { #rt::string(w, #number, #value); }
            }
            Kind::String => quote! { #rt::str_form(w, #number, #value)?; },
            Kind::Json => quote! { #rt::json(w, #number, #value)?; },
            Kind::Sint64 if is_named(ty, INTS) => quote! { #rt::sint(w, #number, #value)?; },
            Kind::Uint64 if is_named(ty, INTS) => quote! { #rt::uint(w, #number, #value)?; },
            Kind::Double if is_named(ty, &["f64", "f32"]) => {
                quote! { #rt::double(w, #number, #value); }
            }
            Kind::Bool if is_named(ty, &["bool"]) => quote! { #rt::boolean(w, #number, #value); },
            Kind::Message(j) => {
                let start = self.name("start");
                let shape = self.model.messages[j].shape;
                let body = match shape {
                    Shape::Object => {
                        self.structs.get(ty)?;
                        self.queue.push((j, ty.clone()));
                        let enc = self.enc_fn(j);
                        quote! { #enc(#value, w)?; }
                    }
                    Shape::Wrapper => {
                        let f = self.model.messages[j].fields[0].clone();
                        self.write(1, f.kind, f.repeated, ty, value, false)?
                    }
                    Shape::MapEntry => return None,
                };
                quote! {
                    let #start = #rt::begin(w, #number);
                    #body
                    #rt::end(w, #start);
                }
            }
            Kind::Map(j) => {
                let v_ty = map_value(ty)?;
                let f = self.model.messages[j].fields.get(1)?.clone();
                let (k, x, start) = (self.name("k"), self.name("x"), self.name("start"));
                let write = self.write(2, f.kind, f.repeated, v_ty, quote!(#x), false)?;
                quote! {
                    for (#k, #x) in #value {
                        let #start = #rt::begin(w, #number);
                        #rt::string(w, 1, #k);
                        #write
                        #rt::end(w, #start);
                    }
                }
            }
            _ => return None,
        })
    }

    /// One packed numeric value.
    fn item(&mut self, kind: Kind, ty: &syn::Type, value: TokenStream) -> Option<TokenStream> {
        let rt = self.rt;
        let rt = quote!(#rt::wire::proto::rt);
        Some(match kind {
            Kind::Sint64 if is_named(ty, INTS) => quote! { #rt::sint_item(w, #value)?; },
            Kind::Uint64 if is_named(ty, INTS) => quote! { #rt::uint_item(w, #value)?; },
            Kind::Double if is_named(ty, &["f64", "f32"]) => {
                quote! { #rt::double_item(w, #value); }
            }
            Kind::Bool if is_named(ty, &["bool"]) => quote! { #rt::bool_item(w, #value); },
            _ => return None,
        })
    }

    /// An expression reading one value of type `ty` of a (non-repeated) field of `kind` from
    /// buffer `b`, whose key was read into `wire`.
    fn read(&mut self, kind: Kind, ty: &syn::Type, b: &Ident) -> Option<TokenStream> {
        let rt = self.rt;
        let rt = quote!(#rt::wire::proto::rt);
        if kind == Kind::Json {
            return Some(quote! { #rt::read_json::<#ty>(wire, &mut #b)? });
        }
        if let Some(inner) = generic(ty, "Option").filter(|_| !self.holds_option(kind)) {
            let read = self.read(kind, inner, b)?;
            return Some(quote! { ::std::option::Option::Some(#read) });
        }
        if let Some(inner) = generic(ty, "Box") {
            let read = self.read(kind, inner, b)?;
            return Some(quote! { ::std::boxed::Box::new(#read) });
        }
        Some(match kind {
            Kind::String if is_named(ty, &["String"]) => {
                quote! { #rt::read_string(wire, &mut #b)? }
            }
            Kind::String => quote! { #rt::read_str_form::<#ty>(wire, &mut #b)? },
            Kind::Sint64 if is_named(ty, INTS) => quote! { #rt::read_sint::<#ty>(wire, &mut #b)? },
            Kind::Uint64 if is_named(ty, INTS) => quote! { #rt::read_uint::<#ty>(wire, &mut #b)? },
            Kind::Double if is_named(ty, &["f64", "f32"]) => {
                quote! { #rt::read_double::<#ty>(wire, &mut #b)? }
            }
            Kind::Bool if is_named(ty, &["bool"]) => quote! { #rt::read_bool(wire, &mut #b)? },
            Kind::Message(j) => match self.model.messages[j].shape {
                Shape::Object => {
                    self.structs.get(ty)?;
                    self.queue.push((j, ty.clone()));
                    let dec = self.dec_fn(j);
                    quote! { #dec(#rt::delimited(wire, &mut #b)?, depth + 1)? }
                }
                Shape::Wrapper => {
                    // An empty wrapper is `null`, an empty array or an empty map.
                    let f = self.model.messages[j].fields[0].clone();
                    let (wb, v) = (self.name("wb"), self.name("v"));
                    let merge = if f.kind == Kind::Json && !f.repeated {
                        quote! { #v = #rt::read_json::<#ty>(wire, &mut #wb)?; }
                    } else {
                        self.merge(f.kind, f.repeated, ty, quote!(#v), &wb)?
                    };
                    quote! {{
                        let mut #wb = #rt::delimited(wire, &mut #b)?;
                        let mut #v: #ty = ::std::default::Default::default();
                        while !#wb.is_empty() {
                            let (number, wire) = #rt::key(&mut #wb)?;
                            if number == 1 {
                                #merge
                            } else {
                                #rt::skip(number, wire, &mut #wb)?;
                            }
                        }
                        #v
                    }}
                }
                Shape::MapEntry => return None,
            },
            _ => return None,
        })
    }

    /// Statements merging one occurrence of a field of `kind` into `slot` (a place of type
    /// `ty`, which has a default: an `Option`, a `Vec` or a map).
    fn merge(
        &mut self,
        kind: Kind,
        repeated: bool,
        ty: &syn::Type,
        slot: TokenStream,
        b: &Ident,
    ) -> Option<TokenStream> {
        let rt = self.rt;
        let rt = quote!(#rt::wire::proto::rt);
        if let Some(inner) = generic(ty, "Option") {
            if repeated || matches!(kind, Kind::Map(_)) {
                let s = self.name("s");
                let merge = self.merge(kind, repeated, inner, quote!((*#s)), b)?;
                return Some(quote! {
                    let #s = #slot.get_or_insert_with(::std::default::Default::default);
                    #merge
                });
            }
            let read = self.read(kind, inner, b)?;
            return Some(quote! { #slot = ::std::option::Option::Some(#read); });
        }
        if repeated {
            let item_ty = generic(ty, "Vec")?;
            if packed(kind) {
                let (item_wire, read) = match kind {
                    Kind::Double if is_named(item_ty, &["f64", "f32"]) => {
                        (quote!(SixtyFourBit), quote!(#rt::read_double::<#item_ty>))
                    }
                    Kind::Sint64 if is_named(item_ty, INTS) => {
                        (quote!(Varint), quote!(#rt::read_sint::<#item_ty>))
                    }
                    Kind::Uint64 if is_named(item_ty, INTS) => {
                        (quote!(Varint), quote!(#rt::read_uint::<#item_ty>))
                    }
                    Kind::Bool if is_named(item_ty, &["bool"]) => {
                        (quote!(Varint), quote!(#rt::read_bool))
                    }
                    _ => return None,
                };
                return Some(quote! {
                    #rt::read_repeated(wire, &mut #b, #rt::WireType::#item_wire, #read, &mut #slot)?;
                });
            }
            let read = self.read(kind, item_ty, b)?;
            return Some(quote! { #slot.push(#read); });
        }
        let Kind::Map(j) = kind else { return None };
        let v_ty = map_value(ty)?;
        let f = self.model.messages[j].fields.get(1)?.clone();
        if f.repeated {
            return None;
        }
        let (eb, k, v) = (self.name("eb"), self.name("k"), self.name("v"));
        let read = self.read(f.kind, v_ty, &eb)?;
        Some(quote! {
            let mut #eb = #rt::delimited(wire, &mut #b)?;
            let mut #k: ::std::option::Option<::std::string::String> = ::std::option::Option::None;
            let mut #v: ::std::option::Option<#v_ty> = ::std::option::Option::None;
            while !#eb.is_empty() {
                let (number, wire) = #rt::key(&mut #eb)?;
                match number {
                    1 => #k = ::std::option::Option::Some(#rt::read_string(wire, &mut #eb)?),
                    2 => #v = ::std::option::Option::Some(#read),
                    _ => #rt::skip(number, wire, &mut #eb)?,
                }
            }
            // A missing key or value (another producer's zero): the JSON path reads it.
            match (#k, #v) {
                (::std::option::Option::Some(k), ::std::option::Option::Some(v)) => {
                    #slot.insert(k, v);
                }
                _ => return ::std::result::Result::Err(#rt::Fail),
            }
        })
    }
}
