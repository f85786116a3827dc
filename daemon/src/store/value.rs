//! Values as the store binds and reads them, whatever the engine: the five
//! storage classes SQL engines share. The engine's module converts them to
//! and from its driver's types (`store/sqlite/value.rs`), borrowing where
//! the driver lends.

/// A value bound to a statement's placeholder (or read whole from a row).
#[derive(Debug, Clone, PartialEq)]
pub enum SqlValue {
    Null,
    Integer(i64),
    Real(f64),
    Text(String),
    Blob(Vec<u8>),
}

/// A column's value borrowed from the row it was read from (no copy of text
/// or bytes until the caller makes one).
#[derive(Debug, Clone, Copy, PartialEq)]
pub enum SqlRef<'a> {
    Null,
    Integer(i64),
    Real(f64),
    /// UTF-8 as the engine stores it (not checked here).
    Text(&'a [u8]),
    Blob(&'a [u8]),
}

impl From<String> for SqlValue {
    fn from(s: String) -> Self {
        SqlValue::Text(s)
    }
}

impl From<&str> for SqlValue {
    fn from(s: &str) -> Self {
        SqlValue::Text(s.to_string())
    }
}

impl From<i64> for SqlValue {
    fn from(i: i64) -> Self {
        SqlValue::Integer(i)
    }
}

impl From<f64> for SqlValue {
    fn from(f: f64) -> Self {
        SqlValue::Real(f)
    }
}

impl From<bool> for SqlValue {
    fn from(b: bool) -> Self {
        SqlValue::Integer(i64::from(b))
    }
}

/// A value that can be bound to a placeholder, lent as the engine reads it
/// (no copy of text or bytes).
pub trait Param {
    fn to_ref(&self) -> SqlRef<'_>;
}

impl Param for SqlValue {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        match self {
            SqlValue::Null => SqlRef::Null,
            SqlValue::Integer(i) => SqlRef::Integer(*i),
            SqlValue::Real(f) => SqlRef::Real(*f),
            SqlValue::Text(s) => SqlRef::Text(s.as_bytes()),
            SqlValue::Blob(b) => SqlRef::Blob(b),
        }
    }
}

impl Param for SqlRef<'_> {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        *self
    }
}

impl Param for str {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        SqlRef::Text(self.as_bytes())
    }
}

impl Param for String {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        SqlRef::Text(self.as_bytes())
    }
}

impl Param for [u8] {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        SqlRef::Blob(self)
    }
}

impl Param for Vec<u8> {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        SqlRef::Blob(self)
    }
}

macro_rules! int_param {
    ($($t:ty),*) => {$(
        impl Param for $t {
            #[inline]
            fn to_ref(&self) -> SqlRef<'_> {
                SqlRef::Integer(i64::from(*self))
            }
        }
    )*};
}
int_param!(i64, i32, u32, u16, u8, bool);

impl Param for u64 {
    /// Above `i64::MAX`: the largest integer the engines store.
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        SqlRef::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Param for usize {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        SqlRef::Integer(i64::try_from(*self).unwrap_or(i64::MAX))
    }
}

impl Param for f64 {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        SqlRef::Real(*self)
    }
}

impl<T: Param> Param for Option<T> {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        match self {
            Some(v) => v.to_ref(),
            None => SqlRef::Null,
        }
    }
}

impl<T: Param + ?Sized> Param for &T {
    #[inline]
    fn to_ref(&self) -> SqlRef<'_> {
        (**self).to_ref()
    }
}

/// A statement's values, in placeholder order: `()` for none, an array or
/// slice of one type (`[id]`, `&params[..]`), or `args![a, b, …]` for
/// values of different types.
pub trait Params {
    fn count(&self) -> usize;
    fn at(&self, i: usize) -> SqlRef<'_>;
}

impl Params for () {
    #[inline]
    fn count(&self) -> usize {
        0
    }
    #[inline]
    fn at(&self, _: usize) -> SqlRef<'_> {
        SqlRef::Null
    }
}

impl<T: Param> Params for &[T] {
    #[inline]
    fn count(&self) -> usize {
        <[T]>::len(self)
    }
    #[inline]
    fn at(&self, i: usize) -> SqlRef<'_> {
        self[i].to_ref()
    }
}

impl<T: Param> Params for &Vec<T> {
    #[inline]
    fn count(&self) -> usize {
        Vec::len(self)
    }
    #[inline]
    fn at(&self, i: usize) -> SqlRef<'_> {
        self[i].to_ref()
    }
}

impl<T: Param, const N: usize> Params for [T; N] {
    #[inline]
    fn count(&self) -> usize {
        N
    }
    #[inline]
    fn at(&self, i: usize) -> SqlRef<'_> {
        self[i].to_ref()
    }
}

impl<T: Param, const N: usize> Params for &[T; N] {
    #[inline]
    fn count(&self) -> usize {
        N
    }
    #[inline]
    fn at(&self, i: usize) -> SqlRef<'_> {
        self[i].to_ref()
    }
}

/// Values of several lists one after the other (`(&joins, [id], &rest)`),
/// without copying them into one.
macro_rules! tuple_params {
    ($($n:ident),+) => {
        impl<$($n: Params),+> Params for ($($n,)+) {
            #[inline]
            fn count(&self) -> usize {
                #[allow(non_snake_case)]
                let ($($n,)+) = self;
                0 $(+ $n.count())+
            }
            #[inline]
            fn at(&self, mut i: usize) -> SqlRef<'_> {
                #[allow(non_snake_case)]
                let ($($n,)+) = self;
                $(
                    let k = $n.count();
                    if i < k {
                        return $n.at(i);
                    }
                    i -= k;
                )+
                let _ = i;
                SqlRef::Null
            }
        }
    };
}
tuple_params!(A, B);
tuple_params!(A, B, C);
tuple_params!(A, B, C, D);
tuple_params!(A, B, C, D, E);

/// Values of different types for one statement: `args![id, name, 3]`.
macro_rules! args {
    ($($v:expr),+ $(,)?) => {
        &[$(&$v as &dyn $crate::store::Param),+]
    };
}
pub(crate) use args;

/// What a column's value is read as (`row.get::<T>(i)`): the conversions
/// every engine gives alike — text as `String` (UTF-8 checked), integers,
/// reals (an integer read as one too), bytes, NULL as `None`.
pub trait Column: Sized {
    /// `None`: the value is not of this type.
    fn from_ref(v: SqlRef<'_>) -> Option<Result<Self, std::str::Utf8Error>>;
}

impl Column for String {
    #[inline]
    fn from_ref(v: SqlRef<'_>) -> Option<Result<Self, std::str::Utf8Error>> {
        match v {
            SqlRef::Text(t) => Some(std::str::from_utf8(t).map(str::to_owned)),
            _ => None,
        }
    }
}

impl Column for i64 {
    #[inline]
    fn from_ref(v: SqlRef<'_>) -> Option<Result<Self, std::str::Utf8Error>> {
        match v {
            SqlRef::Integer(i) => Some(Ok(i)),
            _ => None,
        }
    }
}

macro_rules! int_column {
    ($($t:ty),*) => {$(
        /// An integer out of the type's range is not of the type.
        impl Column for $t {
            #[inline]
            fn from_ref(v: SqlRef<'_>) -> Option<Result<Self, std::str::Utf8Error>> {
                match v {
                    SqlRef::Integer(i) => <$t>::try_from(i).ok().map(Ok),
                    _ => None,
                }
            }
        }
    )*};
}
int_column!(i32, u16, u32, u64, usize);

impl Column for bool {
    #[inline]
    fn from_ref(v: SqlRef<'_>) -> Option<Result<Self, std::str::Utf8Error>> {
        match v {
            SqlRef::Integer(i) => Some(Ok(i != 0)),
            _ => None,
        }
    }
}

impl Column for f64 {
    #[inline]
    fn from_ref(v: SqlRef<'_>) -> Option<Result<Self, std::str::Utf8Error>> {
        match v {
            SqlRef::Integer(i) => Some(Ok(i as f64)),
            SqlRef::Real(f) => Some(Ok(f)),
            _ => None,
        }
    }
}

impl Column for Vec<u8> {
    #[inline]
    fn from_ref(v: SqlRef<'_>) -> Option<Result<Self, std::str::Utf8Error>> {
        match v {
            SqlRef::Blob(b) => Some(Ok(b.to_vec())),
            _ => None,
        }
    }
}

impl Column for SqlValue {
    #[inline]
    fn from_ref(v: SqlRef<'_>) -> Option<Result<Self, std::str::Utf8Error>> {
        Some(Ok(match v {
            SqlRef::Null => SqlValue::Null,
            SqlRef::Integer(i) => SqlValue::Integer(i),
            SqlRef::Real(f) => SqlValue::Real(f),
            SqlRef::Text(t) => SqlValue::Text(String::from_utf8_lossy(t).into_owned()),
            SqlRef::Blob(b) => SqlValue::Blob(b.to_vec()),
        }))
    }
}

impl<T: Column> Column for Option<T> {
    #[inline]
    fn from_ref(v: SqlRef<'_>) -> Option<Result<Self, std::str::Utf8Error>> {
        match v {
            SqlRef::Null => Some(Ok(None)),
            v => T::from_ref(v).map(|r| r.map(Some)),
        }
    }
}
