//! Offset paging for the API's lists: one rule for the page size, and the one extra row fetched to
//! tell whether another page follows.

use crate::{AppError, Result};

/// The most items one page returns.
pub const MAX_PAGE: u32 = 100;

/// Page `page` (from 0) of `limit` items, checked.
#[derive(Debug, Clone, Copy)]
pub struct Paging {
    limit: u32,
    page: u32,
}

impl Paging {
    /// Checks the page size (1 to [`MAX_PAGE`]); the message names the field.
    pub fn new(page: u32, limit: u32) -> Result<Paging> {
        if limit == 0 || limit > MAX_PAGE {
            return Err(AppError::invalid(format!(
                "invalid limit: must be between 1 and {MAX_PAGE}"
            )));
        }
        Ok(Paging { limit, page })
    }

    /// The first page at the largest size: the newest items, for a summary.
    pub fn newest() -> Paging {
        Paging {
            limit: MAX_PAGE,
            page: 0,
        }
    }

    /// Rows to fetch: one more than the page, to see whether more follow.
    pub fn fetch(self) -> i64 {
        i64::from(self.limit) + 1
    }

    /// Rows to skip.
    pub fn offset(self) -> i64 {
        i64::from(self.page) * i64::from(self.limit)
    }

    /// The page from what [`Self::fetch`] returned, and whether another page follows.
    pub fn split<T>(self, mut rows: Vec<T>) -> (Vec<T>, bool) {
        let limit = self.limit as usize;
        let more = rows.len() > limit;
        rows.truncate(limit);
        (rows, more)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn pages_and_bounds() {
        let p = Paging::new(2, 3).unwrap();
        assert_eq!((p.fetch(), p.offset()), (4, 6));
        assert_eq!(p.split(vec![1, 2, 3, 4]), (vec![1, 2, 3], true));
        assert_eq!(p.split(vec![1, 2]), (vec![1, 2], false));
        for bad in [0, MAX_PAGE + 1] {
            assert_eq!(
                Paging::new(0, bad).unwrap_err().to_string(),
                "invalid limit: must be between 1 and 100"
            );
        }
    }
}
