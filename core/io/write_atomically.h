// write_atomically: the one way kiln writes a file. The content goes to a hidden temporary
// file beside the target (".<name>.tmp-<pid>-<n>": same directory, so the rename never
// crosses file systems; pid and counter, so two writers never share it), is flushed to disk,
// and is then renamed onto the target. A reader, or a later run after a crash or a kill,
// sees the old file or the new one, never half of one. On any failure the temporary file is
// removed, the target is left as it was, and a FileError naming the target is thrown.
#pragma once

#include <functional>
#include <iosfwd>
#include <string>
#include <string_view>

#include "core/io/file_error.h"

namespace kiln {

// fill(tmp) creates and writes the file at tmp (a library that opens files by name: HDF5,
// libpng). An exception from fill removes tmp and propagates; a FileError about tmp is
// rethrown naming path instead.
void write_atomically(const std::string& path, const std::function<void(const std::string& tmp)>& fill);

// fill(out) writes the content to a binary stream; a stream that fails (disk full, quota)
// becomes a FileError naming path.
void write_stream_atomically(const std::string& path, const std::function<void(std::ostream& out)>& fill);

// The whole content at once.
void write_bytes_atomically(const std::string& path, std::string_view bytes);

}  // namespace kiln
