package web

import (
	"io"
	"net/http"
)

func (s *Server) getConfig(w http.ResponseWriter, r *http.Request) error {
	writeJSON(w, http.StatusOK, s.settings.Read(r))
	return nil
}

// postConfig changes some or all of the browser's settings. Anything
// invalid rejects the whole request and changes nothing.
func (s *Server) postConfig(w http.ResponseWriter, r *http.Request) error {
	body, err := io.ReadAll(r.Body)
	if err != nil {
		return err
	}
	next, err := ApplySettingsPatch(s.settings.Read(r), body)
	if err != nil {
		return badRequest("%s", err.Error())
	}
	s.settings.Write(w, r, next)
	writeJSON(w, http.StatusOK, next)
	return nil
}
