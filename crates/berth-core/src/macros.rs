//! `string_enum!`: an enum with the one spelling each value has on the wire and in storage, its
//! parser (errors name the field) and its conversions.

macro_rules! string_enum {
    ($(#[$doc:meta])* $name:ident, $field:literal, { $($variant:ident => $text:literal),+ $(,)? }) => {
        $(#[$doc])*
        #[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
        pub enum $name { $($variant),+ }

        impl $name {
            /// Every value, in ascending order.
            pub const ALL: &'static [$name] = &[$($name::$variant),+];

            /// The canonical spelling.
            pub fn as_str(self) -> &'static str {
                match self { $($name::$variant => $text),+ }
            }

            /// Parses the canonical spelling; anything else is an error naming the field.
            pub fn parse(s: &str) -> Result<Self, CoreError> {
                match s {
                    $($text => Ok($name::$variant),)+
                    _ => Err(CoreError::invalid(
                        $field,
                        format!(
                            "'{s}' is not one of: {}",
                            [$($text),+].join(", ")
                        ),
                    )),
                }
            }
        }

        impl std::fmt::Display for $name {
            fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
                f.write_str(self.as_str())
            }
        }

        impl std::str::FromStr for $name {
            type Err = CoreError;
            fn from_str(s: &str) -> Result<Self, CoreError> { Self::parse(s) }
        }

        impl TryFrom<String> for $name {
            type Error = CoreError;
            fn try_from(s: String) -> Result<Self, CoreError> { Self::parse(&s) }
        }
    };
}
