; Windows installer of Corral, made from the PyInstaller program folder (dist\corral).
;
;   makensis -WX -DVERSION=0.1.0 -DSRC_DIR=dist\corral installer.nsi
;
; Defines:
;   VERSION      Corral's version (app/__init__.py); required
;   SRC_DIR      the program folder PyInstaller made (default dist\corral)
;   OUTFILE      the installer to write (default dist\corral-VERSION-setup.exe)
;   VI_VERSION   VERSION as four numbers for the file properties (default VERSION.0)
;   EXE_FILE     the program's file name in SRC_DIR (default corral.exe)
;   COMPRESSION  lzma (default, smallest) or zlib (fast)
;
; Corral is installed for the current user (no administrator rights needed) under
; %LOCALAPPDATA%\Programs\Corral, with a Start menu shortcut, an optional desktop shortcut
; and an entry in Settings > Apps. The uninstaller removes exactly those; the settings and
; chat history (%APPDATA%\corral, %LOCALAPPDATA%\corral) stay unless the user ticks
; "Remove my settings and chat history".

Unicode true

!ifndef VERSION
  !error "Give Corral's version: makensis -DVERSION=0.1.0 installer.nsi"
!endif
!ifndef SRC_DIR
  !define SRC_DIR "dist\corral"
!endif
!ifndef OUTFILE
  !define OUTFILE "dist\corral-${VERSION}-setup.exe"
!endif
!ifndef VI_VERSION
  !define VI_VERSION "${VERSION}.0"
!endif
!ifndef EXE_FILE
  !define EXE_FILE "corral.exe"
!endif
!ifndef COMPRESSION
  !define COMPRESSION "lzma"
!endif

!define APP_NAME "Corral"
!define PUBLISHER "The Corral authors"
!define UNINSTALL_KEY "Software\Microsoft\Windows\CurrentVersion\Uninstall\Corral"
!define UNINSTALLER "uninstall.exe"

SetCompressor /SOLID ${COMPRESSION}

!include "MUI2.nsh"
!include "FileFunc.nsh"
!include "LogicLib.nsh"

Name "${APP_NAME}"
OutFile "${OUTFILE}"
InstallDir "$LOCALAPPDATA\Programs\Corral"
InstallDirRegKey HKCU "${UNINSTALL_KEY}" "InstallLocation"
RequestExecutionLevel user
ManifestDPIAware true
BrandingText "${APP_NAME} ${VERSION}"

VIProductVersion "${VI_VERSION}"
VIFileVersion "${VI_VERSION}"

!define MUI_ICON "resources\corral.ico"
!define MUI_UNICON "resources\corral.ico"
!define MUI_ABORTWARNING
!define MUI_COMPONENTSPAGE_NODESC
!define MUI_UNCOMPONENTSPAGE_NODESC
!define MUI_FINISHPAGE_RUN "$INSTDIR\${EXE_FILE}"
!define MUI_FINISHPAGE_RUN_TEXT "Start Corral"

!insertmacro MUI_PAGE_WELCOME
!insertmacro MUI_PAGE_LICENSE "LICENSE"
!insertmacro MUI_PAGE_COMPONENTS
!insertmacro MUI_PAGE_DIRECTORY
!insertmacro MUI_PAGE_INSTFILES
!insertmacro MUI_PAGE_FINISH

!insertmacro MUI_UNPAGE_CONFIRM
!insertmacro MUI_UNPAGE_COMPONENTS
!insertmacro MUI_UNPAGE_INSTFILES

!insertmacro MUI_LANGUAGE "English"

VIAddVersionKey /LANG=${LANG_ENGLISH} "ProductName" "${APP_NAME}"
VIAddVersionKey /LANG=${LANG_ENGLISH} "ProductVersion" "${VERSION}"
VIAddVersionKey /LANG=${LANG_ENGLISH} "FileVersion" "${VERSION}"
VIAddVersionKey /LANG=${LANG_ENGLISH} "FileDescription" "${APP_NAME} ${VERSION} Setup"
VIAddVersionKey /LANG=${LANG_ENGLISH} "CompanyName" "${PUBLISHER}"
VIAddVersionKey /LANG=${LANG_ENGLISH} "LegalCopyright" "Copyright (c) ${PUBLISHER}"

Section "Corral" SecProgram
  SectionIn RO
  SetOutPath "$INSTDIR"
  ; The program files of an older version go first, so that none of them is left behind.
  RMDir /r "$INSTDIR\_internal"
  File "${SRC_DIR}\${EXE_FILE}"
  File /r "${SRC_DIR}\_internal"
  WriteUninstaller "$INSTDIR\${UNINSTALLER}"

  CreateShortCut "$SMPROGRAMS\${APP_NAME}.lnk" "$INSTDIR\${EXE_FILE}" "" "$INSTDIR\${EXE_FILE}" 0

  ; A desktop shortcut of an earlier install goes unless it is asked for again (below).
  ReadRegDWORD $0 HKCU "${UNINSTALL_KEY}" "DesktopShortcut"
  ${If} $0 = 1
    Delete "$DESKTOP\${APP_NAME}.lnk"
  ${EndIf}

  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayName" "${APP_NAME}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayVersion" "${VERSION}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "Publisher" "${PUBLISHER}"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "DisplayIcon" "$INSTDIR\${EXE_FILE},0"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "InstallLocation" "$INSTDIR"
  WriteRegStr HKCU "${UNINSTALL_KEY}" "UninstallString" '"$INSTDIR\${UNINSTALLER}"'
  WriteRegStr HKCU "${UNINSTALL_KEY}" "QuietUninstallString" '"$INSTDIR\${UNINSTALLER}" /S'
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoModify" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "NoRepair" 1
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "DesktopShortcut" 0
  ${GetSize} "$INSTDIR" "/S=0K" $0 $1 $2
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "EstimatedSize" "$0"
SectionEnd

Section "Desktop shortcut" SecDesktop
  CreateShortCut "$DESKTOP\${APP_NAME}.lnk" "$INSTDIR\${EXE_FILE}" "" "$INSTDIR\${EXE_FILE}" 0
  WriteRegDWORD HKCU "${UNINSTALL_KEY}" "DesktopShortcut" 1
SectionEnd

Section "un.Corral" UnSecProgram
  SectionIn RO
  Delete "$SMPROGRAMS\${APP_NAME}.lnk"
  ReadRegDWORD $0 HKCU "${UNINSTALL_KEY}" "DesktopShortcut"
  ${If} $0 = 1
    Delete "$DESKTOP\${APP_NAME}.lnk"
  ${EndIf}
  Delete "$INSTDIR\${EXE_FILE}"
  RMDir /r "$INSTDIR\_internal"
  Delete "$INSTDIR\${UNINSTALLER}"
  ; Only if empty: files the user put there stay, and so does the folder then.
  RMDir "$INSTDIR"
  DeleteRegKey HKCU "${UNINSTALL_KEY}"
SectionEnd

Section /o "un.Remove my settings and chat history" UnSecUserData
  RMDir /r "$APPDATA\corral"
  RMDir /r "$LOCALAPPDATA\corral"
SectionEnd
