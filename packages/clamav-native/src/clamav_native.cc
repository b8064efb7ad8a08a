// FILDES for clamd: passes an open file descriptor to a local clamd over its unix socket
// (SCM_RIGHTS ancillary data, which Node's net module cannot send), so clamd scans the file
// itself whatever its permissions on the path. Only the send is native: synchronous and
// non-blocking, on a kept IDSESSION socket that Node owns and reads (clamd's reply arrives on it
// like any other reply of the session).
#include <node_api.h>

#include <cerrno>
#include <cstring>
#include <sys/stat.h>
#include <string>
#include <sys/socket.h>

namespace {

napi_value throw_errno(napi_env env, const char* code, const std::string& message) {
  std::string text = message + ": " + std::strerror(errno);
  napi_value error_message, error, error_code;
  napi_create_string_utf8(env, text.c_str(), text.size(), &error_message);
  napi_create_string_utf8(env, code, NAPI_AUTO_LENGTH, &error_code);
  napi_create_error(env, error_code, error_message, &error);
  napi_throw(env, error);
  return nullptr;
}

// sendFileDescriptor(socketFd: number, fileFd: number): undefined
// Sends "zFILDES\0" and one byte carrying fileFd in ONE sendmsg (all or nothing on a unix
// stream socket: a session is never left with half a command), without blocking. clamd eats the
// byte after the command's NUL as the one the descriptor came with.
napi_value SendFileDescriptor(napi_env env, napi_callback_info info) {
  size_t argc = 2;
  napi_value argv[2];
  napi_get_cb_info(env, info, &argc, argv, nullptr, nullptr);
  int sock = -1;
  int file = -1;
  if (argc < 2 || napi_get_value_int32(env, argv[0], &sock) != napi_ok ||
      napi_get_value_int32(env, argv[1], &file) != napi_ok || sock < 0 || file < 0) {
    napi_throw_type_error(env, "EINVAL", "sendFileDescriptor(socketFd, fileFd) takes two descriptors");
    return nullptr;
  }
  struct stat info_file {};
  if (fstat(file, &info_file) != 0) return throw_errno(env, "EFILE", "cannot read the file's status");
  if (!S_ISREG(info_file.st_mode)) {
    errno = EINVAL;
    return throw_errno(env, "EFILE", "not a regular file");
  }
  char bytes[] = {'z', 'F', 'I', 'L', 'D', 'E', 'S', '\0', '\0'};
  iovec vector{bytes, sizeof(bytes)};
  char control[CMSG_SPACE(sizeof(int))] = {};
  msghdr message{};
  message.msg_iov = &vector;
  message.msg_iovlen = 1;
  message.msg_control = control;
  message.msg_controllen = sizeof(control);
  cmsghdr* header = CMSG_FIRSTHDR(&message);
  header->cmsg_level = SOL_SOCKET;
  header->cmsg_type = SCM_RIGHTS;
  header->cmsg_len = CMSG_LEN(sizeof(int));
  std::memcpy(CMSG_DATA(header), &file, sizeof(int));
  ssize_t sent;
  do {
    sent = sendmsg(sock, &message, MSG_NOSIGNAL | MSG_DONTWAIT);
  } while (sent < 0 && errno == EINTR);
  if (sent == static_cast<ssize_t>(sizeof(bytes))) return nullptr;
  if (sent < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
    return throw_errno(env, "EAGAIN", "the session's socket is full");
  if (sent >= 0) {
    // Never seen on a unix stream socket for 9 bytes; the session is unusable if it happens.
    errno = EIO;
    return throw_errno(env, "EPARTIAL", "clamd's socket took part of FILDES");
  }
  return throw_errno(env, "ESEND", "cannot pass the file descriptor");
}

napi_value Init(napi_env env, napi_value exports) {
  napi_property_descriptor property = {"sendFileDescriptor", nullptr, SendFileDescriptor, nullptr, nullptr, nullptr, napi_default, nullptr};
  napi_define_properties(env, exports, 1, &property);
  return exports;
}

}  // namespace

NAPI_MODULE(NODE_GYP_MODULE_NAME, Init)
