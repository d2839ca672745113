// Socket options as plain calls: setsockopt/getsockopt with errors thrown as
// IoError ("setsockopt SO_RCVBUF 127.0.0.1:80: ..."). Options are set once
// per socket, so these are ordinary system calls, not ring operations.
#pragma once

namespace veloq::io {

void set_socket_option(int fd, int level, int name, int value, const char* name_text);
int get_socket_option(int fd, int level, int name, const char* name_text);

}  // namespace veloq::io
