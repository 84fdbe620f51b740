# Reads a libFuzzer log; prints "kiln" for each sanitizer/signal report whose first frame outside
# the sanitizer's interceptors is not in libhdf5, "libhdf5" otherwise.
/ERROR: AddressSanitizer|ERROR: libFuzzer: deadly signal|ERROR: LeakSanitizer/ { inblock = 1; next }
/runtime error:/ { print "kiln"; next }
inblock && /^ *#[0-9]+ / {
  # The interceptors' names go on (__interceptor_memcpy, __asan_memmove): match the whole name.
  if ($0 ~ /in (malloc|calloc|realloc|free|__interceptor_[A-Za-z0-9_]+|__sanitizer_[A-Za-z0-9_]+|__asan_[A-Za-z0-9_]+|mem(cpy|move|set)|str[a-z]*) /) next
  if ($0 ~ /in fuzzer::|in __sanitizer_print_stack_trace|in __sanitizer::|libc\.so|sysdeps\/|in __mem(cpy|move|set)/) next
  print ($0 ~ /libhdf5/ ? "libhdf5" : "kiln"); inblock = 0
}
