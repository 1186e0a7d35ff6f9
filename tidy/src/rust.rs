//! What the rules need from one Rust source file, in one parse: its string literals (with the
//! line of every byte), its string constants, its OpenAPI path annotations, the paths it
//! imports or names, and its enums. Test code (`#[cfg(test)]`, `#[test]`) and doc comments are
//! left out.

use proc_macro2::{Spacing, Span, TokenStream, TokenTree};
use syn::visit::{self, Visit};
use syn::{Attribute, Expr, ImplItem, Item, Lit, LitStr, Meta, UseTree, Visibility};

/// A string literal of production code.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StrLit {
    /// The literal's value, escapes resolved.
    pub value: String,
    /// The line the literal starts on.
    pub line: usize,
    /// Offsets into `value` at which the source moves on to the next line.
    breaks: Vec<usize>,
    /// Whether the literal is the whole value of a `const` or `static` item.
    pub const_value: bool,
    /// Whether the literal is in an arm's pattern of a `match` on something named `…status…`.
    pub status_pattern: bool,
}

impl StrLit {
    /// The source line of the byte at `offset` in `value`.
    pub fn line_at(&self, offset: usize) -> usize {
        self.line + self.breaks.iter().filter(|&&at| at <= offset).count()
    }
}

/// A `const` or `static` item whose value is a string literal.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ConstStr {
    /// The item's path inside its file (inline modules, then the name).
    pub path: Vec<String>,
    pub value: String,
    pub line: usize,
}

/// A `#[utoipa::path(…)]` annotation; `literal` is `None` when its `path = ` is not a string
/// literal (or is missing).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct OpenApiPath {
    pub literal: Option<String>,
    pub line: usize,
}

/// How a path reached the file.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum ImportKind {
    /// A leaf of a `use` tree: `public` for `pub use` (a re-export), `name` is what the leaf
    /// is visible as (`None` for a glob).
    Use { public: bool, name: Option<String> },
    /// A path of two or more segments in code (macro arguments included); whether it names
    /// a module of this crate is for the reader to decide.
    Path,
}

/// A path this file names, as written (`crate`, `super` and `self` kept as segments).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Import {
    pub segments: Vec<String>,
    pub line: usize,
    /// The inline modules the path appears in, inside the file's own module.
    pub inline_module: Vec<String>,
    pub kind: ImportKind,
}

/// An enum and the serde attributes that decide its wire strings.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct EnumDef {
    pub name: String,
    pub line: usize,
    /// `#[serde(rename_all = "…")]`.
    pub rename_all: Option<String>,
    /// Each variant's name and its `#[serde(rename = "…")]`.
    pub variants: Vec<(String, Option<String>)>,
}

/// Everything the rules read from one file.
#[derive(Debug, Default)]
pub struct Extract {
    pub literals: Vec<StrLit>,
    pub consts: Vec<ConstStr>,
    pub openapi_paths: Vec<OpenApiPath>,
    pub imports: Vec<Import>,
    pub enums: Vec<EnumDef>,
    /// Modules declared `#[cfg(test)] mod name;`, whose files are test code (paths relative
    /// to this file's module).
    pub test_file_modules: Vec<Vec<String>>,
}

/// Parses `source` and collects what the rules need from its production code.
pub fn extract(source: &str) -> Result<Extract, String> {
    let file = syn::parse_file(source).map_err(|err| {
        let at = err.span().start();
        format!("does not parse at {}:{}: {err}", at.line, at.column)
    })?;
    let mut collector = Collector::default();
    collector.visit_file(&file);
    Ok(collector.out)
}

#[derive(Default)]
struct Collector {
    inline_module: Vec<String>,
    in_status_pattern: bool,
    out: Extract,
}

impl Collector {
    fn push_literal(&mut self, token: &proc_macro2::Literal, const_value: bool) {
        if let Some((value, breaks)) = decode(&token.to_string()) {
            self.out.literals.push(StrLit {
                value,
                line: line_of(token.span()),
                breaks,
                const_value,
                status_pattern: self.in_status_pattern,
            });
        }
    }

    /// Records a `const`/`static` whose value is a string literal; false for any other value.
    fn record_const(&mut self, ident: &syn::Ident, expr: &Expr, attrs: &[Attribute]) -> bool {
        let Expr::Lit(syn::ExprLit {
            lit: Lit::Str(lit), ..
        }) = expr
        else {
            return false;
        };
        let mut path = self.inline_module.clone();
        path.push(ident.to_string());
        self.out.consts.push(ConstStr {
            path,
            value: lit.value(),
            line: line_of(ident.span()),
        });
        self.push_literal(&lit.token(), true);
        for attr in attrs {
            self.visit_attribute(attr);
        }
        true
    }

    fn push_import(&mut self, segments: Vec<String>, line: usize, kind: ImportKind) {
        self.out.imports.push(Import {
            segments,
            line,
            inline_module: self.inline_module.clone(),
            kind,
        });
    }

    fn use_leaf(
        &mut self,
        prefix: &[String],
        ident: &syn::Ident,
        visible_as: Option<String>,
        public: bool,
    ) {
        let mut segments = prefix.to_vec();
        let name = ident.to_string();
        // `use a::{self}` names `a` itself.
        if name != "self" {
            segments.push(name);
        }
        let name = visible_as.or_else(|| segments.last().cloned());
        let kind = ImportKind::Use { public, name };
        self.push_import(segments, line_of(ident.span()), kind);
    }

    fn walk_use(&mut self, tree: &UseTree, prefix: &mut Vec<String>, public: bool) {
        match tree {
            UseTree::Path(path) => {
                prefix.push(path.ident.to_string());
                self.walk_use(&path.tree, prefix, public);
                prefix.pop();
            }
            UseTree::Name(name) => self.use_leaf(prefix, &name.ident, None, public),
            UseTree::Rename(rename) => {
                let visible_as = Some(rename.rename.to_string());
                self.use_leaf(prefix, &rename.ident, visible_as, public);
            }
            UseTree::Glob(glob) => {
                let mut segments = prefix.clone();
                segments.push("*".into());
                let kind = ImportKind::Use { public, name: None };
                self.push_import(segments, line_of(glob.star_token.spans[0]), kind);
            }
            UseTree::Group(group) => {
                for item in &group.items {
                    self.walk_use(item, prefix, public);
                }
            }
        }
    }

    /// Macro arguments and attribute arguments are tokens, not syntax: their string literals
    /// and paths are found token by token.
    fn scan_tokens(&mut self, tokens: TokenStream) {
        let tokens: Vec<TokenTree> = tokens.into_iter().collect();
        let mut index = 0;
        while index < tokens.len() {
            match &tokens[index] {
                TokenTree::Group(group) => self.scan_tokens(group.stream()),
                TokenTree::Literal(literal) => {
                    if matches!(Lit::new(literal.clone()), Lit::Str(_)) {
                        self.push_literal(literal, false);
                    }
                }
                TokenTree::Ident(ident) => {
                    let (segments, next) = token_path(&tokens, index);
                    if segments.len() > 1 && !follows_dollar(&tokens, index) {
                        self.push_import(segments, line_of(ident.span()), ImportKind::Path);
                    }
                    index = next;
                    continue;
                }
                _ => {}
            }
            index += 1;
        }
    }

    fn record_openapi_path(&mut self, attr: &Attribute) {
        let line = line_of(attr.pound_token.spans[0]);
        let Meta::List(list) = &attr.meta else {
            self.out.openapi_paths.push(OpenApiPath {
                literal: None,
                line,
            });
            return;
        };
        let literal = string_setting(list.tokens.clone(), "path");
        self.out.openapi_paths.push(OpenApiPath { literal, line });
    }
}

impl<'ast> Visit<'ast> for Collector {
    fn visit_item(&mut self, item: &'ast Item) {
        if is_test(item_attrs(item)) {
            if let Item::Mod(module) = item
                && module.content.is_none()
            {
                let mut path = self.inline_module.clone();
                path.push(module.ident.to_string());
                self.out.test_file_modules.push(path);
            }
            return;
        }
        visit::visit_item(self, item);
    }

    fn visit_item_mod(&mut self, module: &'ast syn::ItemMod) {
        if let Some((_, items)) = &module.content {
            self.inline_module.push(module.ident.to_string());
            for item in items {
                self.visit_item(item);
            }
            self.inline_module.pop();
        }
    }

    fn visit_impl_item(&mut self, item: &'ast ImplItem) {
        let attrs: &[Attribute] = match item {
            ImplItem::Const(item) => &item.attrs,
            ImplItem::Fn(item) => &item.attrs,
            ImplItem::Type(item) => &item.attrs,
            ImplItem::Macro(item) => &item.attrs,
            _ => &[],
        };
        if !is_test(attrs) {
            visit::visit_impl_item(self, item);
        }
    }

    fn visit_item_const(&mut self, item: &'ast syn::ItemConst) {
        if !self.record_const(&item.ident, &item.expr, &item.attrs) {
            visit::visit_item_const(self, item);
        }
    }

    fn visit_item_static(&mut self, item: &'ast syn::ItemStatic) {
        if !self.record_const(&item.ident, &item.expr, &item.attrs) {
            visit::visit_item_static(self, item);
        }
    }

    fn visit_impl_item_const(&mut self, item: &'ast syn::ImplItemConst) {
        if !self.record_const(&item.ident, &item.expr, &item.attrs) {
            visit::visit_impl_item_const(self, item);
        }
    }

    fn visit_item_enum(&mut self, item: &'ast syn::ItemEnum) {
        self.out.enums.push(EnumDef {
            name: item.ident.to_string(),
            line: line_of(item.ident.span()),
            rename_all: serde_setting(&item.attrs, "rename_all"),
            variants: item
                .variants
                .iter()
                .map(|variant| {
                    (
                        variant.ident.to_string(),
                        serde_setting(&variant.attrs, "rename"),
                    )
                })
                .collect(),
        });
        visit::visit_item_enum(self, item);
    }

    fn visit_expr_match(&mut self, expr: &'ast syn::ExprMatch) {
        for attr in &expr.attrs {
            self.visit_attribute(attr);
        }
        self.visit_expr(&expr.expr);
        let mut mention = StatusMention(false);
        mention.visit_expr(&expr.expr);
        for arm in &expr.arms {
            for attr in &arm.attrs {
                self.visit_attribute(attr);
            }
            let outer = std::mem::replace(&mut self.in_status_pattern, mention.0);
            self.visit_pat(&arm.pat);
            self.in_status_pattern = outer;
            if let Some((_, guard)) = &arm.guard {
                self.visit_expr(guard);
            }
            self.visit_expr(&arm.body);
        }
    }

    fn visit_item_use(&mut self, item: &'ast syn::ItemUse) {
        let public = !matches!(item.vis, Visibility::Inherited);
        self.walk_use(&item.tree, &mut Vec::new(), public);
    }

    fn visit_lit_str(&mut self, lit: &'ast LitStr) {
        self.push_literal(&lit.token(), false);
    }

    fn visit_attribute(&mut self, attr: &'ast Attribute) {
        let path = attr.path();
        if path.is_ident("doc") {
            return;
        }
        let names: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if names == ["utoipa", "path"] {
            self.record_openapi_path(attr);
            return;
        }
        match &attr.meta {
            Meta::List(list) => self.scan_tokens(list.tokens.clone()),
            Meta::NameValue(name_value) => self.visit_expr(&name_value.value),
            Meta::Path(_) => {}
        }
    }

    fn visit_macro(&mut self, mac: &'ast syn::Macro) {
        self.visit_path(&mac.path);
        self.scan_tokens(mac.tokens.clone());
    }

    fn visit_path(&mut self, path: &'ast syn::Path) {
        let segments: Vec<String> = path.segments.iter().map(|s| s.ident.to_string()).collect();
        if segments.len() > 1 && path.leading_colon.is_none() {
            let line = line_of(path.segments[0].ident.span());
            self.push_import(segments, line, ImportKind::Path);
        }
        visit::visit_path(self, path);
    }

    /// `pub(crate)` and `pub(super)` are visibility, not a use of another module.
    fn visit_visibility(&mut self, _: &'ast Visibility) {}
}

/// Whether an expression names anything `…status…`.
struct StatusMention(bool);

impl<'ast> Visit<'ast> for StatusMention {
    fn visit_ident(&mut self, ident: &'ast proc_macro2::Ident) {
        self.0 |= ident.to_string().to_lowercase().contains("status");
    }
}

/// `$crate` in a `macro_rules!` body names the macro's crate, not a module.
fn follows_dollar(tokens: &[TokenTree], index: usize) -> bool {
    index > 0 && matches!(&tokens[index - 1], TokenTree::Punct(p) if p.as_char() == '$')
}

/// The path starting at `tokens[start]` (`a::b::c`) and the index after it.
fn token_path(tokens: &[TokenTree], start: usize) -> (Vec<String>, usize) {
    let mut segments = vec![tokens[start].to_string()];
    let mut index = start + 1;
    while let [
        TokenTree::Punct(first),
        TokenTree::Punct(second),
        TokenTree::Ident(ident),
        ..,
    ] = &tokens[index.min(tokens.len())..]
    {
        if first.as_char() != ':' || first.spacing() != Spacing::Joint || second.as_char() != ':' {
            break;
        }
        segments.push(ident.to_string());
        index += 3;
    }
    (segments, index)
}

/// The string literal after `name =` at the top level of `tokens`.
fn string_setting(tokens: TokenStream, name: &str) -> Option<String> {
    let tokens: Vec<TokenTree> = tokens.into_iter().collect();
    tokens.windows(3).find_map(|window| match window {
        [
            TokenTree::Ident(ident),
            TokenTree::Punct(eq),
            TokenTree::Literal(literal),
        ] if ident == name && eq.as_char() == '=' => match Lit::new(literal.clone()) {
            Lit::Str(lit) => Some(lit.value()),
            _ => None,
        },
        _ => None,
    })
}

/// `#[serde(name = "…")]` among `attrs`.
fn serde_setting(attrs: &[Attribute], name: &str) -> Option<String> {
    attrs.iter().find_map(|attr| match &attr.meta {
        Meta::List(list) if list.path.is_ident("serde") => {
            string_setting(list.tokens.clone(), name)
        }
        _ => None,
    })
}

/// `#[test]`, `#[tokio::test]` and the like, or `#[cfg(test)]` (but not `#[cfg(not(test))]`).
fn is_test(attrs: &[Attribute]) -> bool {
    attrs.iter().any(|attr| {
        let path = attr.path();
        if path
            .segments
            .last()
            .is_some_and(|last| last.ident == "test")
        {
            return true;
        }
        let Meta::List(list) = &attr.meta else {
            return false;
        };
        if !path.is_ident("cfg") {
            return false;
        }
        let mut idents = Vec::new();
        collect_idents(list.tokens.clone(), &mut idents);
        idents.iter().any(|ident| ident == "test") && !idents.iter().any(|ident| ident == "not")
    })
}

fn collect_idents(tokens: TokenStream, into: &mut Vec<String>) {
    for token in tokens {
        match token {
            TokenTree::Ident(ident) => into.push(ident.to_string()),
            TokenTree::Group(group) => collect_idents(group.stream(), into),
            _ => {}
        }
    }
}

fn item_attrs(item: &Item) -> &[Attribute] {
    match item {
        Item::Const(item) => &item.attrs,
        Item::Enum(item) => &item.attrs,
        Item::ExternCrate(item) => &item.attrs,
        Item::Fn(item) => &item.attrs,
        Item::ForeignMod(item) => &item.attrs,
        Item::Impl(item) => &item.attrs,
        Item::Macro(item) => &item.attrs,
        Item::Mod(item) => &item.attrs,
        Item::Static(item) => &item.attrs,
        Item::Struct(item) => &item.attrs,
        Item::Trait(item) => &item.attrs,
        Item::TraitAlias(item) => &item.attrs,
        Item::Type(item) => &item.attrs,
        Item::Union(item) => &item.attrs,
        Item::Use(item) => &item.attrs,
        _ => &[],
    }
}

fn line_of(span: Span) -> usize {
    span.start().line
}

/// A string literal's value and the offsets at which its source moves to the next line, from
/// its source text (`"…"` or `r#"…"#`); `None` for anything else (byte and C strings).
pub fn decode(source: &str) -> Option<(String, Vec<usize>)> {
    if let Some(raw) = source.strip_prefix('r') {
        let hashes = raw.len() - raw.trim_start_matches('#').len();
        let body = raw[hashes..].strip_prefix('"')?;
        let body = &body[..body.rfind('"')?];
        let breaks = body.match_indices('\n').map(|(at, _)| at + 1).collect();
        return Some((body.to_owned(), breaks));
    }
    let body = source.strip_prefix('"')?;
    let body = &body[..body.rfind('"')?];
    let mut value = String::with_capacity(body.len());
    let mut breaks = Vec::new();
    let mut chars = body.chars().peekable();
    while let Some(c) = chars.next() {
        match c {
            '\n' => {
                value.push('\n');
                breaks.push(value.len());
            }
            '\\' => match chars.next()? {
                'n' => value.push('\n'),
                'r' => value.push('\r'),
                't' => value.push('\t'),
                '0' => value.push('\0'),
                'x' => {
                    let hex: String = chars.by_ref().take(2).collect();
                    value.push(char::from(u8::from_str_radix(&hex, 16).ok()?));
                }
                'u' => {
                    let hex: String = chars.by_ref().skip(1).take_while(|&c| c != '}').collect();
                    value.push(char::from_u32(u32::from_str_radix(&hex, 16).ok()?)?);
                }
                // A line continuation: the newline and the next line's indentation vanish.
                escaped @ ('\n' | '\r') => {
                    if escaped == '\n' {
                        breaks.push(value.len());
                    }
                    while let Some(&next) = chars.peek() {
                        if !next.is_whitespace() {
                            break;
                        }
                        if next == '\n' {
                            breaks.push(value.len());
                        }
                        chars.next();
                    }
                }
                other => value.push(other),
            },
            other => value.push(other),
        }
    }
    Some((value, breaks))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_are_resolved_and_lines_kept() {
        let (value, breaks) = decode("\"a\\n\\\"b\\\"\\x41\\u{263A}\"").unwrap();
        assert_eq!(value, "a\n\"b\"A\u{263A}");
        assert!(breaks.is_empty());

        let (value, breaks) = decode("\"UPDATE jobs\n   SET x = 1 \\\n   WHERE y\"").unwrap();
        assert_eq!(value, "UPDATE jobs\n   SET x = 1 WHERE y");
        assert_eq!(breaks, [12, 25]);

        let (value, breaks) = decode("r#\"say \"hi\"\nthere\"#").unwrap();
        assert_eq!(value, "say \"hi\"\nthere");
        assert_eq!(breaks, [9]);

        assert_eq!(decode("b\"bytes\""), None);
    }

    #[test]
    fn a_literal_knows_the_line_of_each_byte() {
        let source = "fn f() {\n    q(\"SELECT 1;\n      UPDATE jobs SET a = 1\");\n}\n";
        let extract = extract(source).unwrap();
        let lit = &extract.literals[0];
        assert_eq!(lit.line, 2);
        assert_eq!(lit.line_at(lit.value.find("UPDATE").unwrap()), 3);
    }

    #[test]
    fn test_code_and_doc_comments_are_left_out() {
        let source = r#"
            /// "/v1/doc"
            fn prod() { let _ = "kept"; }
            #[cfg(test)]
            mod tests { fn t() { let _ = "test-only"; } }
            #[test]
            fn direct() { let _ = "test-fn"; }
            #[cfg(not(test))]
            fn not_test() { let _ = "not-test"; }
            struct S;
            impl S {
                #[cfg(test)]
                fn helper() { let _ = "test-helper"; }
            }
            #[cfg(test)]
            mod in_a_file;
        "#;
        let extract = extract(source).unwrap();
        let values: Vec<&str> = extract.literals.iter().map(|l| l.value.as_str()).collect();
        assert_eq!(values, ["kept", "not-test"]);
        assert_eq!(extract.test_file_modules, [vec!["in_a_file".to_owned()]]);
    }

    #[test]
    fn literals_inside_macros_and_attributes_are_found() {
        let source = r##"
            #[error("attr {0}")]
            struct E;
            fn f() {
                sqlx::query!(r#"UPDATE jobs SET a = 1"#);
                let _ = format!("/v1/tasks/{}", json!({"status": "failed"}));
            }
        "##;
        let extract = extract(source).unwrap();
        let values: Vec<&str> = extract.literals.iter().map(|l| l.value.as_str()).collect();
        assert_eq!(
            values,
            [
                "attr {0}",
                "UPDATE jobs SET a = 1",
                "/v1/tasks/{}",
                "status",
                "failed"
            ]
        );
    }

    #[test]
    fn string_constants_are_recorded_with_their_module() {
        let source = r#"
            pub const TOP: &str = "/healthz";
            pub mod worker { pub const RUN: &str = "/v1/worker/jobs:run"; }
            static S: &str = "s";
            const N: u32 = 1;
            struct T;
            impl T { const IN_IMPL: &'static str = "x"; }
        "#;
        let extract = extract(source).unwrap();
        let consts: Vec<(String, &str)> = extract
            .consts
            .iter()
            .map(|c| (c.path.join("::"), c.value.as_str()))
            .collect();
        assert_eq!(
            consts,
            [
                ("TOP".into(), "/healthz"),
                ("worker::RUN".into(), "/v1/worker/jobs:run"),
                ("S".into(), "s"),
                ("IN_IMPL".into(), "x"),
            ]
        );
        assert!(extract.literals.iter().all(|l| l.const_value));
    }

    #[test]
    fn patterns_of_a_match_on_a_status_are_marked() {
        let source = r#"
            fn f() {
                match job_status.as_deref() { Some("queued") => "a", _ => "b" };
                match kind { "queued" => 1, _ => 2 };
            }
        "#;
        let extract = extract(source).unwrap();
        let marked: Vec<(&str, bool)> = extract
            .literals
            .iter()
            .map(|l| (l.value.as_str(), l.status_pattern))
            .collect();
        assert_eq!(
            marked,
            [
                ("queued", true),
                ("a", false),
                ("b", false),
                ("queued", false)
            ]
        );
    }

    #[test]
    fn openapi_annotations_are_read() {
        let source = r#"
            #[utoipa::path(get, path = "/v1/tasks", params(("path" = String, Path)))]
            async fn a() {}
            #[utoipa::path(get, path = routes::TASKS)]
            async fn b() {}
        "#;
        let extract = extract(source).unwrap();
        assert_eq!(
            extract.openapi_paths,
            [
                OpenApiPath {
                    literal: Some("/v1/tasks".into()),
                    line: 2
                },
                OpenApiPath {
                    literal: None,
                    line: 4
                },
            ]
        );
        assert!(
            extract.literals.is_empty(),
            "annotation strings belong to rule 4"
        );
    }

    #[test]
    fn imports_are_read_from_use_trees_code_and_macros() {
        let source = r#"
            use crate::{jobs, workflow::store::{self, Lease as L}, config::*};
            pub use super::pipeline::invoke;
            pub(crate) fn f() {
                crate::nodes::touch();
                tracing::info!("{}", crate::metrics::count());
                macro_rules! m { () => { $crate::x::y() } }
            }
            mod inner { use super::sibling::S; }
        "#;
        let extract = extract(source).unwrap();
        let imports: Vec<(String, ImportKind, Vec<String>)> = extract
            .imports
            .iter()
            .map(|i| {
                (
                    i.segments.join("::"),
                    i.kind.clone(),
                    i.inline_module.clone(),
                )
            })
            .collect();
        let used = |public, name: Option<&str>| ImportKind::Use {
            public,
            name: name.map(str::to_owned),
        };
        assert_eq!(
            imports,
            [
                ("crate::jobs".into(), used(false, Some("jobs")), vec![]),
                (
                    "crate::workflow::store".into(),
                    used(false, Some("store")),
                    vec![]
                ),
                (
                    "crate::workflow::store::Lease".into(),
                    used(false, Some("L")),
                    vec![]
                ),
                ("crate::config::*".into(), used(false, None), vec![]),
                (
                    "super::pipeline::invoke".into(),
                    used(true, Some("invoke")),
                    vec![]
                ),
                ("crate::nodes::touch".into(), ImportKind::Path, vec![]),
                ("tracing::info".into(), ImportKind::Path, vec![]),
                ("crate::metrics::count".into(), ImportKind::Path, vec![]),
                (
                    "super::sibling::S".into(),
                    used(false, Some("S")),
                    vec!["inner".into()]
                ),
            ]
        );
    }

    #[test]
    fn enums_carry_their_serde_names() {
        let source = r#"
            #[derive(Serialize)]
            #[serde(rename_all = "snake_case")]
            pub enum JobStatus { Queued, #[serde(rename = "lease_expired")] Expired }
        "#;
        let extract = extract(source).unwrap();
        assert_eq!(
            extract.enums,
            [EnumDef {
                name: "JobStatus".into(),
                line: 4,
                rename_all: Some("snake_case".into()),
                variants: vec![
                    ("Queued".into(), None),
                    ("Expired".into(), Some("lease_expired".into()))
                ],
            }]
        );
    }
}
