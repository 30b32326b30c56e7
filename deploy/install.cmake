# deploy/install.cmake - `cmake --install build` (or `make install` in the build directory):
#   bin/                          fd-router, fd-router-cp, fd-router-dp, fdctl
#   libexec/fd-router/fd-sim      the FastDeploy instance simulator (tests, demos; not for PATH)
#   share/fd-router/configs/      the example config.yaml and register.yaml
#   share/fd-router/README.md, share/fd-router/docs/ (the README links docs/)
#   share/fd-router/grafana/      the Grafana dashboard
#   lib/systemd/system/           fd-router@.service (paths filled in for this prefix)
#   lib/sysusers.d/fd-router.conf the service account
# The live configuration is the operator's: copy an example to <sysconfdir>/fd-router/config.yaml.
include(GNUInstallDirs)

foreach(t fd-router fd-router-cp fd-router-dp fdctl)
  if(TARGET ${t})
    install(TARGETS ${t} RUNTIME DESTINATION ${CMAKE_INSTALL_BINDIR})
  endif()
endforeach()
if(TARGET fd-sim)
  install(TARGETS fd-sim RUNTIME DESTINATION ${CMAKE_INSTALL_LIBEXECDIR}/fd-router)
endif()

install(FILES ${CMAKE_SOURCE_DIR}/configs/config.example.yaml ${CMAKE_SOURCE_DIR}/configs/register.example.yaml
        DESTINATION ${CMAKE_INSTALL_DATADIR}/fd-router/configs)
install(FILES ${CMAKE_SOURCE_DIR}/README.md DESTINATION ${CMAKE_INSTALL_DATADIR}/fd-router)
install(DIRECTORY ${CMAKE_SOURCE_DIR}/docs DESTINATION ${CMAKE_INSTALL_DATADIR}/fd-router)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/grafana/fd-router-dashboard.json
        DESTINATION ${CMAKE_INSTALL_DATADIR}/fd-router/grafana)

# The unit names absolute paths: filled in at install time, for the prefix actually installed to
# (`cmake --install build --prefix /usr` gives /usr/bin and /etc).
install(CODE "
  set(p \"\${CMAKE_INSTALL_PREFIX}\")
  set(CMAKE_INSTALL_FULL_BINDIR \"\${p}/${CMAKE_INSTALL_BINDIR}\")
  set(CMAKE_INSTALL_FULL_DATADIR \"\${p}/${CMAKE_INSTALL_DATADIR}\")
  if(p STREQUAL \"/usr\")
    set(CMAKE_INSTALL_FULL_SYSCONFDIR /etc)
  else()
    set(CMAKE_INSTALL_FULL_SYSCONFDIR \"\${p}/etc\")
  endif()
  configure_file(${CMAKE_SOURCE_DIR}/deploy/systemd/fd-router@.service.in
                 ${CMAKE_BINARY_DIR}/deploy/fd-router@.service @ONLY)
")
install(FILES ${CMAKE_BINARY_DIR}/deploy/fd-router@.service DESTINATION lib/systemd/system)
install(FILES ${CMAKE_SOURCE_DIR}/deploy/systemd/fd-router.sysusers DESTINATION lib/sysusers.d
        RENAME fd-router.conf)
