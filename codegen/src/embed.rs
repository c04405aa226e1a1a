//! The catalog's own schema files in its generated code, so another catalog can build on it
//! by depending on its crate (`Config::extern_catalog(ExternCatalog::files("org", org::events::SCHEMA_FILES))`):
//! the schemas another build reads are exactly those the depended-on types were made from.

use proc_macro2::TokenStream;
use quote::quote;

use crate::catalog::Catalog;

pub(crate) fn schema_files(catalog: &Catalog) -> TokenStream {
    let paths = catalog.sources.iter().map(|(p, _)| p);
    let texts = catalog.sources.iter().map(|(_, t)| t);
    let name = &catalog.name;
    let doc = format!(
        " This catalog's name, `{name}` (`catalog` in its `streams.json`): other catalogs refer \
         to its shared definitions as `{name}:shared/<file>.json#/$defs/<Name>`."
    );
    quote! {
        #[doc = #doc]
        pub const CATALOG_NAME: &str = #name;
        /// This catalog's schema files (path relative to its root, content), for catalogs that
        /// build on it: `ExternCatalog::files(CATALOG_NAME, SCHEMA_FILES)`
        /// in their build scripts.
        pub const SCHEMA_FILES: &[(&str, &str)] = &[#((#paths, #texts)),*];
    }
}
