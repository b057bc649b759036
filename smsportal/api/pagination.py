"""Cursor pagination for every list: stable under inserts, no page counting.

A `cursor` this list did not give out, or a `limit` that is not a whole number of at least 1, is a
400 on that field (DRF would answer 404 for the one and silently ignore the other). A `limit` above
the maximum is served as the maximum, as documented.
"""
from django.core.exceptions import ValidationError as DjangoValidationError
from rest_framework import pagination
from rest_framework.exceptions import ErrorDetail, NotFound, ValidationError


def _invalid(field: str, code: str, message: str) -> ValidationError:
    return ValidationError({field: [ErrorDetail(message, code=code)]})


class CursorPagination(pagination.CursorPagination):
    ordering = ("-created_at", "-id")
    page_size = 50
    page_size_query_param = "limit"
    max_page_size = 200

    def get_page_size(self, request):
        raw = request.query_params.get(self.page_size_query_param)
        if not raw:  # absent, or `?limit=`: like any empty query parameter, not given
            return self.page_size
        if not raw.isascii() or not raw.isdigit() or int(raw) < 1:
            raise _invalid("limit", "invalid_limit", "limit must be a whole number of at least 1.")
        return min(int(raw), self.max_page_size)

    def decode_cursor(self, request):
        try:
            cursor = super().decode_cursor(request)
        except NotFound:  # DRF's answer to a cursor it cannot decode
            raise self._invalid_cursor() from None
        if cursor is not None and cursor.position is not None:
            self._check_position(cursor.position)
        return cursor

    def _check_position(self, position: str) -> None:
        # The position is compared with the first ordering field in SQL: a forged one must fail here,
        # as a 400, not in the database as a 500.
        field = self._model._meta.get_field(self.ordering[0].lstrip("-"))
        try:
            if "\x00" in position:
                raise ValueError("NUL byte")
            field.to_python(position)
        except (DjangoValidationError, ValueError, TypeError, OverflowError):
            raise self._invalid_cursor() from None

    def paginate_queryset(self, queryset, request, view=None):
        self._model = queryset.model  # for decode_cursor, which DRF calls without the queryset
        return super().paginate_queryset(queryset, request, view)

    def _invalid_cursor(self) -> ValidationError:
        return _invalid("cursor", "invalid_cursor", "This cursor is not one this list gave out.")

    def get_schema_operation_parameters(self, view):
        cursor, limit = super().get_schema_operation_parameters(view)
        cursor["description"] = "The `next` or `previous` link's cursor, to get that page."
        limit["description"] = (f"Items per page, {self.page_size} by default; at most {self.max_page_size} "
                                f"(a larger value gives {self.max_page_size}).")
        limit["schema"] = {"type": "integer", "minimum": 1}
        return [cursor, limit]
