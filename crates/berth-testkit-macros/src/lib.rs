//! `#[backend_test]`: one async test body, run twice, on SQLite and on PostgreSQL. An attribute
//! on an ordinary `async fn` (rather than a `macro_rules!` call around it), so that rustfmt
//! formats the body.
//!
//! ```ignore
//! #[backend_test]
//! async fn creates_things(kind: DbKind) {
//!     let db = TestDb::new(kind).await;
//! }
//! ```
//! expands to a module `creates_things` with the body and two tests, `sqlite` and `postgres`, each
//! on a multi-threaded runtime with two workers. Attributes other than the doc comment (such as
//! `#[ignore]`) go on every test.
//!
//! `#[backend_test(s3)]` adds a third test, `s3`: PostgreSQL with the blobs in the test S3 service
//! (databases made by the body keep their blobs there, through `berth_testkit::ON_S3`), so that
//! registry tests run on both storage kinds.

use proc_macro::TokenStream;
use quote::quote;
use syn::{Attribute, FnArg, ItemFn, parse_macro_input};

/// Runs an `async fn name(kind: DbKind)` once per database backend (see the crate docs).
#[proc_macro_attribute]
pub fn backend_test(attr: TokenStream, item: TokenStream) -> TokenStream {
    let on_s3 = match attr.to_string().as_str() {
        "" => false,
        "s3" => true,
        _ => {
            return syn::Error::new(
                proc_macro2::Span::call_site(),
                "#[backend_test] takes no argument, or `s3`",
            )
            .to_compile_error()
            .into();
        }
    };
    let f = parse_macro_input!(item as ItemFn);
    if f.sig.asyncness.is_none() || f.sig.inputs.len() != 1 || !matches!(f.sig.inputs.first(), Some(FnArg::Typed(_))) {
        return syn::Error::new_spanned(&f.sig, "#[backend_test] goes on an `async fn name(kind: DbKind)`")
            .to_compile_error()
            .into();
    }
    let name = &f.sig.ident;
    let input = &f.sig.inputs;
    let body = &f.block;
    let (docs, others): (Vec<&Attribute>, Vec<&Attribute>) = f.attrs.iter().partition(|a| a.path().is_ident("doc"));
    let s3 = if on_s3 {
        quote! {
            #(#others)*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn s3() {
                ::berth_testkit::ON_S3.scope(true, body(::berth_testkit::DbKind::Postgres)).await
            }
        }
    } else {
        quote! {}
    };
    quote! {
        #(#docs)*
        mod #name {
            #[allow(unused_imports)]
            use super::*;

            async fn body(#input) #body

            #(#others)*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn sqlite() {
                body(::berth_testkit::DbKind::Sqlite).await
            }

            #(#others)*
            #[tokio::test(flavor = "multi_thread", worker_threads = 2)]
            async fn postgres() {
                body(::berth_testkit::DbKind::Postgres).await
            }

            #s3
        }
    }
    .into()
}
